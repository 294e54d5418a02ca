//! The outer tar of a package: a ustar archive read straight from the byte slice. Header
//! sizes are never trusted beyond the slice; anything but the four known regular files is
//! refused.

use super::TarballError;

const BLOCK: usize = 512;

/// The four entries' data, borrowed from the input.
pub(super) struct Parts<'a> {
    pub version: &'a [u8],
    pub checksum: &'a [u8],
    pub metadata: &'a [u8],
    pub contents: &'a [u8],
}

const NAMES: [&str; 4] = ["VERSION", "CHECKSUM", "metadata.config", "contents.tar.gz"];

fn malformed(msg: &str) -> TarballError {
    TarballError::Malformed(msg.to_owned())
}

/// Reads an octal numeric header field (digits, optionally surrounded by spaces/NULs).
fn octal(field: &[u8], what: &str) -> Result<u64, TarballError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(malformed(&format!(
            "base-256 {what} field is not supported"
        )));
    }
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != 0 && b != b' ');
    let mut v: u64 = 0;
    let mut n = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return Err(malformed(&format!("bad {what} field")));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| malformed(&format!("{what} field overflows")))?;
        n += 1;
    }
    if n == 0 {
        return Err(malformed(&format!("empty {what} field")));
    }
    Ok(v)
}

fn field(block: &[u8], start: usize, len: usize) -> &[u8] {
    block.get(start..start + len).unwrap_or(&[])
}

fn cstr(f: &[u8]) -> &[u8] {
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    f.get(..end).unwrap_or(f)
}

/// Splits the outer tar into its four entries.
pub(super) fn read(bytes: &[u8]) -> Result<Parts<'_>, TarballError> {
    let mut found: [Option<&[u8]>; 4] = [None; 4];
    let mut off = 0usize;
    loop {
        let block = bytes
            .get(off..off.saturating_add(BLOCK))
            .ok_or(TarballError::Truncated)?;
        if block.iter().all(|&b| b == 0) {
            // end of archive: whatever follows must be zero padding
            let rest = bytes.get(off..).unwrap_or(&[]);
            if !rest.iter().all(|&b| b == 0) {
                return Err(malformed("data after the end-of-archive marker"));
            }
            break;
        }
        let stored = octal(field(block, 148, 8), "checksum")?;
        let unsigned: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(malformed("header checksum mismatch"));
        }
        let magic = field(block, 257, 8);
        let posix = magic.starts_with(b"ustar\0");
        if !posix && magic != b"ustar  \0" {
            return Err(malformed("not a ustar header"));
        }
        let mut name = cstr(field(block, 0, 100)).to_vec();
        let prefix = cstr(field(block, 345, 155));
        if posix && !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
        let name_text = String::from_utf8_lossy(&name).into_owned();
        let size = usize::try_from(octal(field(block, 124, 12), "size")?)
            .map_err(|_| TarballError::Truncated)?;
        let start = off + BLOCK;
        let end = start.checked_add(size).ok_or(TarballError::Truncated)?;
        let data = bytes.get(start..end).ok_or(TarballError::Truncated)?;
        let typeflag = block.get(156).copied().unwrap_or(0);
        if typeflag != b'0' && typeflag != 0 {
            return Err(TarballError::NotRegularFile(name_text));
        }
        let idx = NAMES
            .iter()
            .position(|n| n.as_bytes() == name.as_slice())
            .ok_or_else(|| TarballError::UnexpectedEntry(name_text.clone()))?;
        let slot = found
            .get_mut(idx)
            .ok_or_else(|| TarballError::UnexpectedEntry(name_text.clone()))?;
        if slot.is_some() {
            return Err(TarballError::DuplicateEntry(name_text));
        }
        *slot = Some(data);
        let padded = size
            .div_ceil(BLOCK)
            .checked_mul(BLOCK)
            .ok_or(TarballError::Truncated)?;
        off = start.checked_add(padded).ok_or(TarballError::Truncated)?;
        if off > bytes.len() {
            return Err(TarballError::Truncated);
        }
    }
    let [v, c, m, x] = found;
    Ok(Parts {
        version: v.ok_or(TarballError::MissingEntry("VERSION"))?,
        checksum: c.ok_or(TarballError::MissingEntry("CHECKSUM"))?,
        metadata: m.ok_or(TarballError::MissingEntry("metadata.config"))?,
        contents: x.ok_or(TarballError::MissingEntry("contents.tar.gz"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_fields() {
        assert_eq!(octal(b"0000644\0", "mode"), Ok(0o644));
        assert_eq!(octal(b"  644 \0", "mode"), Ok(0o644));
        assert!(matches!(
            octal(b"\0\0\0", "size"),
            Err(TarballError::Malformed(_))
        ));
        assert!(matches!(
            octal(b"0009\0", "size"),
            Err(TarballError::Malformed(_))
        ));
        assert!(matches!(
            octal(b"\x80\0\0\0", "size"),
            Err(TarballError::Malformed(_))
        ));
        assert!(matches!(
            octal(b"7777777777777777777777777\0", "size"),
            Err(TarballError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_malformed_or_truncated_never_a_panic() {
        assert_eq!(read(&[1u8; 100]).err(), Some(TarballError::Truncated));
        assert!(matches!(read(&[1u8; 512]), Err(TarballError::Malformed(_))));
        assert_eq!(
            read(&[0u8; 1024]).err(),
            Some(TarballError::MissingEntry("VERSION"))
        );
    }
}
