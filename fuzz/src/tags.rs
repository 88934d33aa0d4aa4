//! Per-client traffic tags: every request a client sends carries its own tag, the scripted
//! servers echo the tag of the request they answer, and the host checks that every tag a client
//! receives is its own. A tag is `tag` + six decimal digits + `z`.

/// The tag of client number `n` (the host's numbering, not the Engine's id).
pub fn tag(n: u32) -> String {
    format!("tag{:06}z", n % 1_000_000)
}

/// Every tag in `bytes`, as client numbers.
pub fn find_tags(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes.windows(10).filter_map(|w| {
        if &w[..3] != b"tag" || w[9] != b'z' {
            return None;
        }
        let digits = std::str::from_utf8(&w[3..9]).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    })
}

/// The first tag in `bytes`, as it appears on the wire.
pub fn first_tag(bytes: &[u8]) -> Option<Vec<u8>> {
    find_tags(bytes).next().map(|n| tag(n).into_bytes())
}
