//! Script bytes as text for brush, and the map back from its char indices to byte offsets.

/// The script as brush sees it: valid UTF-8 with one char per original char, plus the byte
/// offset of every char so spans map back to the original bytes exactly.
pub(crate) struct Source<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) text: String,
    /// `offsets[i]` is the byte offset of char `i`; `offsets[len]` is `bytes.len()`.
    offsets: Vec<usize>,
    /// Byte offsets where lines start.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Invalid UTF-8 bytes become `_` one for one: bash treats such bytes as ordinary word
    /// characters, so token boundaries do not move and byte offsets stay exact.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        let mut text = String::with_capacity(bytes.len());
        let mut offsets = Vec::with_capacity(bytes.len() + 1);
        let mut rest = bytes;
        let mut at = 0;
        while !rest.is_empty() {
            let (valid, bad) = match std::str::from_utf8(rest) {
                Ok(s) => (s, 0),
                Err(e) => {
                    let valid = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or("");
                    (valid, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
                }
            };
            for (i, c) in valid.char_indices() {
                offsets.push(at + i);
                text.push(c);
            }
            at += valid.len();
            for i in 0..bad {
                offsets.push(at + i);
                text.push('_');
            }
            at += bad;
            rest = &bytes[at..];
        }
        offsets.push(bytes.len());
        let line_starts = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Source {
            bytes,
            text,
            offsets,
            line_starts,
        }
    }

    /// Byte offset of char index `i` (clamped to the end).
    pub(crate) fn byte(&self, i: usize) -> usize {
        self.offsets[i.min(self.offsets.len() - 1)]
    }

    /// 1-based line number of a byte offset (binary search over line starts).
    pub(crate) fn line_of(&self, byte: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= byte)
    }

    /// Skips blanks and backslash-newline continuations forward from byte `at`.
    pub(crate) fn skip_blanks(&self, mut at: usize) -> usize {
        loop {
            match self.bytes.get(at..at + 2) {
                Some([b'\\', b'\n']) => at += 2,
                _ => match self.bytes.get(at) {
                    Some(b' ' | b'\t') => at += 1,
                    _ => return at,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_multibyte_and_invalid_bytes() {
        let src = Source::new(b"a\xc3\xa9b\xffc");
        assert_eq!(src.text, "aéb_c");
        assert_eq!(src.byte(0), 0);
        assert_eq!(src.byte(1), 1);
        assert_eq!(src.byte(2), 3);
        assert_eq!(src.byte(3), 4);
        assert_eq!(src.byte(4), 5);
        assert_eq!(src.byte(5), 6);
    }

    #[test]
    fn line_numbers() {
        let src = Source::new(b"a\nbc\n\nd");
        assert_eq!(
            [0, 1, 2, 4, 5, 6, 7].map(|b| src.line_of(b)),
            [1, 1, 2, 2, 3, 4, 4]
        );
    }
}
