//! Running `pct` as root: an argv (never a shell), a fixed environment, a time limit on every call,
//! and output read as bytes with a cap on each line and on the whole run. Output past the caps is
//! still read (so the command never dies of a closed pipe) but no longer kept.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The only environment `pct` gets.
pub const FIXED_ENV: [(&str, &str); 2] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LANG", "C.UTF-8"),
];

/// A line longer than this is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 8 << 10;
/// Output kept per run, both streams together; past it one notice says so.
pub const MAX_OUTPUT_BYTES: u64 = 16 << 20;

/// What a run gave.
#[derive(Debug)]
pub struct Run {
    /// The exit code (128 + signal when killed); `None` when the time limit stopped it.
    pub code: Option<i32>,
    /// Lines as they came, `("stdout" | "stderr", line)`.
    pub lines: Vec<(&'static str, String)>,
}

impl Run {
    /// The lines of one stream joined.
    pub fn text(&self, stream: &str) -> String {
        self.lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A command for `program` with the fixed environment and nothing on standard input.
pub fn command(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear().envs(FIXED_ENV).stdin(Stdio::null());
    c
}

/// Splits bytes into lines of at most [`MAX_LINE_BYTES`], decoding each lossily; counts what it
/// sends against the shared budget.
struct Lines {
    stream: &'static str,
    tx: mpsc::Sender<(&'static str, String)>,
    budget: Arc<AtomicU64>,
    pending: Vec<u8>,
}

impl Lines {
    fn send(&mut self) {
        let line = std::mem::take(&mut self.pending);
        let len = line.len() as u64 + 1;
        let before = self.budget.fetch_add(len, Ordering::SeqCst);
        if before + len <= MAX_OUTPUT_BYTES {
            let _ = self
                .tx
                .send((self.stream, String::from_utf8_lossy(&line).into_owned()));
        } else if before <= MAX_OUTPUT_BYTES {
            let _ = self.tx.send((
                "stderr",
                format!(
                    "[output truncated: more than {} MiB; the rest is not kept]",
                    MAX_OUTPUT_BYTES >> 20
                ),
            ));
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.send();
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE_BYTES {
                    self.send();
                }
            }
        }
    }

    fn read_all(mut self, mut pipe: impl Read) {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if !self.pending.is_empty() {
            self.send();
        }
    }
}

/// Runs `cmd` with `stdin` (or nothing), handing each output line to `on_line` as it comes. Past
/// `limit` the process is killed and `code` is `None`; readers still holding a pipe then get 5 s
/// more before the run returns without them.
pub fn run(
    mut cmd: Command,
    stdin: Option<Stdio>,
    limit: Duration,
    on_line: &mut dyn FnMut(&'static str, &str),
) -> std::io::Result<Run> {
    if let Some(s) = stdin {
        cmd.stdin(s);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (tx, rx) = mpsc::channel();
    let budget = Arc::new(AtomicU64::new(0));
    let out = child.stdout.take();
    let err = child.stderr.take();
    for (stream, pipe) in [
        ("stdout", out.map(|p| Box::new(p) as Box<dyn Read + Send>)),
        ("stderr", err.map(|p| Box::new(p) as Box<dyn Read + Send>)),
    ] {
        if let Some(pipe) = pipe {
            let lines = Lines {
                stream,
                tx: tx.clone(),
                budget: Arc::clone(&budget),
                pending: Vec::new(),
            };
            std::thread::spawn(move || lines.read_all(pipe));
        }
    }
    drop(tx);
    let deadline = Instant::now() + limit;
    let mut kept = Vec::new();
    let mut killed_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((stream, line)) => {
                on_line(stream, &line);
                kept.push((stream, line));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        match killed_at {
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                killed_at = Some(Instant::now());
            }
            Some(t) if t.elapsed() > Duration::from_secs(5) => break,
            _ => {}
        }
    }
    // The pipes closed; the process itself still has until the deadline.
    let status = loop {
        if killed_at.is_some() || Instant::now() >= deadline {
            break None;
        }
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(status) = status else {
        let _ = child.kill();
        // Reaped on its own thread: a process stuck in the kernel must not hold the answer.
        std::thread::spawn(move || child.wait());
        return Ok(Run {
            code: None,
            lines: kept,
        });
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(Run {
        code: Some(code),
        lines: kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(bytes: &[u8]) -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        let l = Lines {
            stream: "stdout",
            tx,
            budget: Arc::new(AtomicU64::new(0)),
            pending: Vec::new(),
        };
        l.read_all(bytes);
        rx.into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn splits_long_lines_and_decodes_lossily() {
        assert_eq!(lines_of(b"a\nb\xff\nc"), vec!["a", "b\u{fffd}", "c"]);
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 3];
        let got = lines_of(&long);
        assert_eq!(
            got.iter().map(String::len).collect::<Vec<_>>(),
            vec![MAX_LINE_BYTES, MAX_LINE_BYTES, 3]
        );
    }

    #[test]
    fn stops_keeping_output_past_the_budget() {
        let (tx, rx) = mpsc::channel();
        let l = Lines {
            stream: "stdout",
            tx,
            budget: Arc::new(AtomicU64::new(MAX_OUTPUT_BYTES - 4)),
            pending: Vec::new(),
        };
        l.read_all(&b"ab\ncd\nef\n"[..]);
        let got: Vec<String> = rx.into_iter().map(|(_, l)| l).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], "ab");
        assert!(got[1].starts_with("[output truncated"), "{got:?}");
    }
}
