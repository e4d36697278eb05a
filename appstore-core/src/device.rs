//! Linux device numbers: splitting a `dev_t` (as `stat` reports it in `st_rdev`) into its major and
//! minor numbers, the glibc encoding used on every Linux architecture PVE runs on.

/// (major, minor) of a `dev_t`.
pub fn split_dev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & 0xffff_f000);
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xffff_ff00);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::split_dev;

    #[test]
    fn splits_small_and_large_numbers() {
        assert_eq!(split_dev(0xe280), (226, 128));
        assert_eq!(split_dev(0x103), (1, 3));
        let (major, minor) = (511u64, 0x12345u64);
        let rdev = ((major & 0xfff) << 8)
            | ((major & !0xfff) << 32)
            | (minor & 0xff)
            | ((minor & !0xff) << 12);
        assert_eq!(split_dev(rdev), (511, 0x12345));
    }
}
