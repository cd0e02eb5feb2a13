//! The few msgpack primitives the crate needs by hand: header decoding for the
//! validator and the framing code, and str writing for error bodies. Values
//! themselves are encoded by JavaScript or by rmp-serde (`value`).

/// One decoded msgpack header. Lengths are as declared by the input and must be
/// checked against the bytes actually present before use.
pub(crate) enum Head {
    /// nil, bool, int, float or bin: `n` opaque payload bytes follow the header.
    Opaque(usize),
    /// A str of `n` bytes.
    Str(usize),
    /// An array of `n` elements.
    Array(usize),
    /// A map of `n` key/value pairs.
    Map(usize),
    /// ext / fixext.
    Ext,
    /// 0xc1, the marker msgpack never uses.
    Reserved,
}

/// Decodes the header at `pos`, returning it with the position just after it,
/// or `None` when the header itself runs past the end of `buf`.
pub(crate) fn head(buf: &[u8], pos: usize) -> Option<(Head, usize)> {
    let marker = *buf.get(pos)?;
    let p = pos + 1;
    let fixed = |h| Some((h, p));
    match marker {
        0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => fixed(Head::Opaque(0)),
        0x80..=0x8f => fixed(Head::Map(usize::from(marker & 0x0f))),
        0x90..=0x9f => fixed(Head::Array(usize::from(marker & 0x0f))),
        0xa0..=0xbf => fixed(Head::Str(usize::from(marker & 0x1f))),
        0xc1 => fixed(Head::Reserved),
        0xc7..=0xc9 | 0xd4..=0xd8 => fixed(Head::Ext),
        0xcc | 0xd0 => fixed(Head::Opaque(1)),
        0xcd | 0xd1 => fixed(Head::Opaque(2)),
        0xca | 0xce | 0xd2 => fixed(Head::Opaque(4)),
        0xcb | 0xcf | 0xd3 => fixed(Head::Opaque(8)),
        0xc4 => length(buf, p, 1, Head::Opaque),
        0xc5 => length(buf, p, 2, Head::Opaque),
        0xc6 => length(buf, p, 4, Head::Opaque),
        0xd9 => length(buf, p, 1, Head::Str),
        0xda => length(buf, p, 2, Head::Str),
        0xdb => length(buf, p, 4, Head::Str),
        0xdc => length(buf, p, 2, Head::Array),
        0xdd => length(buf, p, 4, Head::Array),
        0xde => length(buf, p, 2, Head::Map),
        0xdf => length(buf, p, 4, Head::Map),
    }
}

/// Reads a big-endian length of `width` (1, 2 or 4) bytes at `pos`.
fn length(buf: &[u8], pos: usize, width: usize, make: fn(usize) -> Head) -> Option<(Head, usize)> {
    let bytes = buf.get(pos..pos + width)?;
    let n = bytes.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
    Some((make(n), pos + width))
}

/// Array header at `pos`: its element count and the position of the first element.
pub(crate) fn read_array(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    match head(buf, pos)? {
        (Head::Array(n), p) => Some((n, p)),
        _ => None,
    }
}

/// Str at `pos`: the string and the position after it.
pub(crate) fn read_str(buf: &[u8], pos: usize) -> Option<(&str, usize)> {
    match head(buf, pos)? {
        (Head::Str(n), p) => {
            let end = p.checked_add(n)?;
            let s = std::str::from_utf8(buf.get(p..end)?).ok()?;
            Some((s, end))
        }
        _ => None,
    }
}

/// Size of the smallest str header for a string of `len` bytes.
pub(crate) fn str_header_len(len: usize) -> usize {
    match len {
        0..=31 => 1,
        32..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

/// Appends `s` as a msgpack str, choosing the smallest header like umsgpack does.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    let len = s.len();
    // The casts below are exact: each arm bounds `len` to the header's width.
    match str_header_len(len) {
        1 => out.push(0xa0 | len as u8),
        2 => out.extend_from_slice(&[0xd9, len as u8]),
        3 => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_headers_match_msgpack_sizes() {
        for (len, first) in [
            (0, 0xa0),
            (31, 0xbf),
            (32, 0xd9),
            (255, 0xd9),
            (256, 0xda),
            (65535, 0xda),
            (65536, 0xdb),
        ] {
            let s = "x".repeat(len);
            let mut out = Vec::new();
            write_str(&s, &mut out);
            assert_eq!(out[0], first, "len {len}");
            assert_eq!(out.len(), str_header_len(len) + len);
            assert_eq!(read_str(&out, 0), Some((s.as_str(), out.len())));
        }
    }
}
