//! Where an app's `url` output points, and whether it answers from the host: an HTTP status for http
//! URLs, an accepted TCP connection for other schemes.

use std::time::Duration;

/// Where a `url` output points.
#[derive(Debug, PartialEq)]
pub(super) struct UrlTarget {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl UrlTarget {
    pub(super) fn parse(url: &str) -> Result<UrlTarget, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}` is not a URL (scheme://host...)"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let hostport = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("`{url}` has a bad port `{p}`"))?,
            ),
            None => (
                hostport.to_string(),
                default_port(&scheme).ok_or_else(|| {
                    format!("`{url}` names no port and `{scheme}` has no default one")
                })?,
            ),
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(UrlTarget {
            scheme,
            host,
            port,
            path,
        })
    }

    pub(super) async fn probe(&self) -> Result<String, String> {
        let addr = format!("{}:{}", self.host, self.port);
        let connect = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        .map_err(|_| format!("no answer from {addr} within 5 s"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        if self.scheme != "http" {
            drop(connect);
            return Ok(format!("accepts TCP connections on port {}", self.port));
        }
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = connect;
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: pve-appstore-catalog-test\r\n\r\n",
            self.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head))
            .await
            .map_err(|_| format!("{addr} sent no HTTP answer within 10 s"))?
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&head[..n]);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{addr} did not answer HTTP: {:?}", text.lines().next()))?;
        if status < 400 || status == 401 {
            Ok(format!("answered HTTP {status}"))
        } else {
            Err(format!("answered HTTP {status}"))
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "mqtt" => 1883,
        "mqtts" => 8883,
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        "redis" | "valkey" => 6379,
        "smb" => 445,
        "dns" => 53,
        "ssh" => 22,
        "ftp" => 21,
        "sip" => 5060,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_targets_name_host_and_port() {
        let t = UrlTarget::parse("http://10.1.2.3:8080/login").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("10.1.2.3", 8080, "/login")
        );
        let t = UrlTarget::parse("postgresql://app@10.1.2.3/appdb").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("10.1.2.3", 5432));
        let t = UrlTarget::parse("smb://10.1.2.3/share").unwrap();
        assert_eq!(t.port, 445);
        assert!(UrlTarget::parse("gopher://10.1.2.3/")
            .unwrap_err()
            .contains("no default"));
        assert!(UrlTarget::parse("10.1.2.3:80").is_err());
    }
}
