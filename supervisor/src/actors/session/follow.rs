//! What a `tail -f` session sends of the output it follows.
//!
//! A session's outgoing buffer is bounded, so a client that reads slower than
//! the program writes cannot be sent every byte. The [`Follower`] is told,
//! with each chunk, how much [`Room`] the buffer has: it drops chunks while
//! the buffer is full, and once the buffer has drained it sends the newest
//! output after a marker line saying how much was skipped
//! (`[… 2.3 MB skipped]`). Chunks carry their offset in the followed stream,
//! so what the session lost in the broadcast channel (it fell behind it) is
//! counted the same way.
//!
//! Output is bytes and the protocol carries text: a multi-byte character cut
//! between two chunks is held back (at most 3 bytes) until its rest comes,
//! instead of becoming two U+FFFD. Bytes that are not UTF-8 at all still
//! become U+FFFD, as they would anywhere.

use std::borrow::Cow;

/// How full the session's outgoing buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// At its bound: drop.
    None,
    /// Between the bound and the resume mark: go on as before (sending, or
    /// skipping).
    Some,
    /// Under the resume mark: send.
    Plenty,
}

/// Follow state of one `tail -f` session.
#[derive(Debug)]
pub struct Follower {
    /// Offset after the last byte sent or skipped; `None` before the first.
    next: Option<u64>,
    /// The start of a character whose other bytes have not come yet.
    carry: Vec<u8>,
    /// Bytes skipped since the last marker.
    skipped: u64,
    /// The last text sent ended a line (a marker then needs no newline first).
    at_line_start: bool,
}

impl Default for Follower {
    fn default() -> Self {
        Follower {
            next: None,
            carry: Vec::new(),
            skipped: 0,
            at_line_start: true,
        }
    }
}

impl Follower {
    /// The text to send for a chunk of output at `offset`, if any.
    pub fn on_chunk(&mut self, offset: u64, bytes: &[u8], room: Room) -> Option<String> {
        if let Some(next) = self.next
            && offset > next
        {
            self.lose(offset - next);
        }
        self.next = Some(offset + bytes.len() as u64);
        let drop = match room {
            Room::None => true,
            Room::Some => self.skipped > 0,
            Room::Plenty => false,
        };
        if drop {
            self.lose(bytes.len() as u64);
            return None;
        }
        let mut text = String::new();
        let mut bytes = bytes;
        if self.skipped > 0 {
            // Resume at a character's first byte.
            let tail = bytes.iter().take(3).take_while(|b| is_continuation(**b));
            let lead = tail.count();
            self.skipped += lead as u64;
            bytes = &bytes[lead..];
            if !self.at_line_start {
                text.push('\n');
            }
            text.push_str(&format!("[… {} skipped]\n", size(self.skipped)));
            self.skipped = 0;
            self.at_line_start = true;
        }
        let joined: Cow<'_, [u8]> = if self.carry.is_empty() {
            Cow::Borrowed(bytes)
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(bytes);
            Cow::Owned(joined)
        };
        let cut = complete_len(&joined);
        self.carry = joined[cut..].to_vec();
        self.push(&mut text, &joined[..cut]);
        (!text.is_empty()).then_some(text)
    }

    /// The text left when the followed stream ends: a character that will
    /// never be completed.
    pub fn finish(&mut self) -> Option<String> {
        let carry = std::mem::take(&mut self.carry);
        let mut text = String::new();
        self.push(&mut text, &carry);
        (!text.is_empty()).then_some(text)
    }

    fn push(&mut self, text: &mut String, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.at_line_start = last == b'\n';
            text.push_str(&String::from_utf8_lossy(bytes));
        }
    }

    /// `n` bytes are not sent; neither is a character they cut.
    fn lose(&mut self, n: u64) {
        self.skipped += n + self.carry.len() as u64;
        self.carry.clear();
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The length of `bytes` without an incomplete character at its end (the
/// start of a multi-byte sequence whose other bytes have not come yet).
fn complete_len(bytes: &[u8]) -> usize {
    for start in bytes.len().saturating_sub(3)..bytes.len() {
        if let Err(e) = std::str::from_utf8(&bytes[start..])
            && e.valid_up_to() == 0
            && e.error_len().is_none()
        {
            return start;
        }
    }
    bytes.len()
}

/// `2.3 MB`, `512 bytes`: decimal units, as people read sizes.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        1 => "1 byte".to_string(),
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.1} GB", b / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds chunks written back to back, all with room.
    fn feed(f: &mut Follower, offset: &mut u64, chunks: &[&[u8]]) -> String {
        let mut out = String::new();
        for chunk in chunks {
            if let Some(text) = f.on_chunk(*offset, chunk, Room::Plenty) {
                out.push_str(&text);
            }
            *offset += chunk.len() as u64;
        }
        out
    }

    #[test]
    fn a_character_cut_between_chunks_is_sent_whole() {
        let mut f = Follower::default();
        let mut at = 0;
        assert_eq!(
            f.on_chunk(0, b"a\xe2\x82", Room::Plenty).as_deref(),
            Some("a")
        );
        at += 3;
        assert_eq!(feed(&mut f, &mut at, &[b"\xac", b"b\n"]), "€b\n");
        // A four-byte character in four pieces.
        let emoji = "😀".as_bytes();
        let out = feed(
            &mut f,
            &mut at,
            &[&emoji[..1], &emoji[1..2], &emoji[2..3], &emoji[3..]],
        );
        assert_eq!(out, "😀");
    }

    #[test]
    fn invalid_bytes_are_replaced_not_held() {
        let mut f = Follower::default();
        let mut at = 0;
        // 0xff never starts a character; 0xe2 followed by '(' is broken.
        assert_eq!(
            feed(&mut f, &mut at, &[b"x\xff", b"\xe2(y"]),
            "x\u{fffd}\u{fffd}(y"
        );
        // A character never completed comes out when the stream ends.
        assert_eq!(feed(&mut f, &mut at, &[b"z\xe2\x82"]), "z");
        assert_eq!(f.finish().as_deref(), Some("\u{fffd}"));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn a_full_buffer_skips_then_resumes_with_a_marker() {
        let mut f = Follower::default();
        assert_eq!(
            f.on_chunk(0, b"one\n", Room::Plenty).as_deref(),
            Some("one\n")
        );
        assert_eq!(f.on_chunk(4, &[b'x'; 1_000_000], Room::None), None);
        // Still draining: keep skipping.
        assert_eq!(f.on_chunk(1_000_004, &[b'y'; 1_300_000], Room::Some), None);
        let out = f.on_chunk(2_300_004, b"two\n", Room::Plenty);
        assert_eq!(out.as_deref(), Some("[… 2.3 MB skipped]\ntwo\n"));
        // Sending again: Room::Some keeps sending.
        assert_eq!(
            f.on_chunk(2_300_008, b"3", Room::Some).as_deref(),
            Some("3")
        );
    }

    #[test]
    fn a_gap_in_offsets_is_counted_and_the_marker_starts_its_own_line() {
        let mut f = Follower::default();
        assert_eq!(
            f.on_chunk(100, b"half a li", Room::Plenty).as_deref(),
            Some("half a li")
        );
        // 41 bytes lost in the channel, then a chunk starting inside a
        // character: its continuation bytes are skipped too.
        let out = f.on_chunk(150, b"\x82\xacnew\n", Room::Plenty);
        assert_eq!(out.as_deref(), Some("\n[… 43 bytes skipped]\nnew\n"));
    }

    #[test]
    fn a_character_cut_by_a_skip_is_counted_not_garbled() {
        let mut f = Follower::default();
        assert_eq!(f.on_chunk(0, b"a\xe2", Room::Plenty).as_deref(), Some("a"));
        assert_eq!(f.on_chunk(2, b"\x82\xacb", Room::None), None);
        let out = f.on_chunk(5, b"c\n", Room::Plenty);
        assert_eq!(out.as_deref(), Some("\n[… 4 bytes skipped]\nc\n"));
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(999), "999 bytes");
        assert_eq!(size(1_500), "1.5 kB");
        assert_eq!(size(2_345_678), "2.3 MB");
        assert_eq!(size(3_000_000_000), "3.0 GB");
    }
}
