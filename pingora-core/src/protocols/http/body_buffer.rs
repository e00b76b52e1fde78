//! A bounded copy of a request body, kept so the request can be retried.

use bytes::{Bytes, BytesMut};

/// Keeps up to `capacity` bytes of body; past that it drops its content and
/// remembers it was truncated (a truncated body cannot be replayed).
#[derive(Debug)]
pub struct FixedBuffer {
    buffer: BytesMut,
    capacity: usize,
    truncated: bool,
}

impl FixedBuffer {
    /// An empty buffer that holds at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        FixedBuffer {
            buffer: BytesMut::new(),
            capacity,
            truncated: false,
        }
    }

    /// Append `data`, or mark the buffer truncated when it would not fit.
    pub fn write_to_buffer(&mut self, data: &Bytes) {
        if self.truncated {
            return;
        }
        if self.buffer.len() + data.len() > self.capacity {
            self.truncated = true;
            self.buffer = BytesMut::new();
            return;
        }
        self.buffer.extend_from_slice(data);
    }

    /// Forget everything, including truncation.
    pub fn clear(&mut self) {
        self.truncated = false;
        self.buffer.clear();
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// Whether the body outgrew the buffer.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// A copy of the buffered body; `None` when empty or truncated.
    pub fn get_buffer(&self) -> Option<Bytes> {
        if self.truncated || self.buffer.is_empty() {
            None
        } else {
            Some(Bytes::copy_from_slice(&self.buffer))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_then_truncates() {
        let mut b = FixedBuffer::new(4);
        assert!(b.get_buffer().is_none());
        b.write_to_buffer(&Bytes::from_static(b"ab"));
        b.write_to_buffer(&Bytes::from_static(b"cd"));
        assert_eq!(b.get_buffer().unwrap(), "abcd");
        b.write_to_buffer(&Bytes::from_static(b"e"));
        assert!(b.is_truncated());
        assert!(b.get_buffer().is_none());
        b.clear();
        assert!(!b.is_truncated() && b.is_empty());
    }
}
