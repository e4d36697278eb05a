//! The service's own log file (`<log_dir>/pve-appstore.log`, JSON lines, beside the journal),
//! rotated by size: past [`ROTATE_BYTES`] it becomes `pve-appstore.log.1`, and at most
//! [`GENERATIONS`] old files are kept, so the log never fills the disk.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Size at which the file is rotated.
pub const ROTATE_BYTES: u64 = 16 << 20;
/// Old files kept.
pub const GENERATIONS: u32 = 3;

/// An appending, size-rotated file (0600).
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    limit: u64,
}

fn open(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl RotatingFile {
    /// Opens (or creates) `path`, rotating past `limit` bytes.
    pub fn open(path: &Path, limit: u64) -> std::io::Result<Self> {
        let (file, size) = open(path)?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            limit,
        })
    }

    fn generation(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..GENERATIONS).rev() {
            let _ = std::fs::rename(self.generation(n), self.generation(n + 1));
        }
        std::fs::rename(&self.path, self.generation(1))?;
        (self.file, self.size) = open(&self.path)?;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size >= self.limit {
            // A failed rotation keeps writing to the current file rather than losing lines.
            let _ = self.rotate();
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_few_generations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pve-appstore.log");
        let mut f = RotatingFile::open(&path, 100).unwrap();
        for i in 0..40 {
            writeln!(f, "{{\"line\": {i:04}, \"pad\": \"xxxxxxxxxx\"}}").unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1 + GENERATIONS as usize, "{names:?}");
        assert!(std::fs::metadata(&path).unwrap().len() <= 100 + 40);
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.contains("\"line\": 0039"), "{newest}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
