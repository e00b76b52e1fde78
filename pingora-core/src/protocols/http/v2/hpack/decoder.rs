//! Decoding header blocks (RFC 7541 §3, §6).

use super::huffman;
use super::table::{entry_size, DynamicTable};
use super::tables::STATIC_TABLE;
use super::HpackError;
use bytes::Bytes;

/// One decoded header field. Names and values are slices of the header
/// block or shared with the dynamic table where they can be: only a
/// Huffman-coded literal is copied (and what the table keeps is its own
/// copy, so that it never holds on to a block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedField {
    /// The name as it was sent (HTTP/2 requires lower case; checking that
    /// is the caller's job).
    pub name: Bytes,
    /// The value.
    pub value: Bytes,
    /// The sender asked that the field never be indexed (RFC 7541 §6.2.3),
    /// which a proxy must keep when it forwards the field over HPACK.
    pub never_indexed: bool,
}

/// The receiving side of an HPACK context: one per HTTP/2 connection, fed
/// every header block the peer sends, in order.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The largest table the peer's encoder may use: our
    /// `SETTINGS_HEADER_TABLE_SIZE`, once the peer acknowledged it.
    size_limit: usize,
    /// The limit was lowered below the table's size: the next block must
    /// start with a size update (RFC 7541 §4.2).
    update_required: bool,
    /// The largest header list a block may decode to (name + value + 32 per
    /// field, as `SETTINGS_MAX_HEADER_LIST_SIZE` counts it).
    max_list_size: usize,
}

impl Decoder {
    /// A decoder whose peer may use a dynamic table of up to
    /// `max_table_size` bytes (4,096 unless the settings said otherwise).
    pub fn new(max_table_size: usize) -> Self {
        Decoder {
            table: DynamicTable::new(max_table_size),
            size_limit: max_table_size,
            update_required: false,
            max_list_size: usize::MAX,
        }
    }

    /// Apply a new `SETTINGS_HEADER_TABLE_SIZE` of ours, once the peer
    /// acknowledged it.
    pub fn set_max_table_size(&mut self, size: usize) {
        if size < self.table.max_size() {
            self.update_required = true;
        }
        self.size_limit = size;
    }

    /// Refuse blocks that decode to more than `size` (see
    /// [`HpackError::HeaderListTooLarge`]).
    pub fn set_max_header_list_size(&mut self, size: usize) {
        self.max_list_size = size;
    }

    /// Decode one complete header block (the fragments of a HEADERS frame
    /// and its CONTINUATION frames, joined), handing each field to `emit`
    /// in order.
    ///
    /// A block that decodes to more than the header list limit is still
    /// decoded to its end, so that the dynamic table stays in step with the
    /// peer's; the fields past the limit are not emitted and the result is
    /// [`HpackError::HeaderListTooLarge`], which ends the stream only. Every
    /// other error breaks the shared context and must end the connection
    /// (`COMPRESSION_ERROR`).
    pub fn decode(
        &mut self,
        block: &Bytes,
        mut emit: impl FnMut(DecodedField),
    ) -> Result<(), HpackError> {
        let mut pos = 0;
        let mut at_start = true;
        let mut list_size = 0usize;
        while pos < block.len() {
            let first = block[pos];
            let field = if first & 0x80 != 0 {
                // indexed field
                let index = decode_int(block, &mut pos, 7)?;
                let (name, value) = self.lookup(index)?;
                DecodedField {
                    name,
                    value,
                    never_indexed: false,
                }
            } else if first & 0xc0 == 0x40 {
                // literal with incremental indexing
                let (name, value) = self.literal(block, &mut pos, 6)?;
                // copies: a slice would keep the whole block (often a large
                // read buffer) alive for as long as the entry stays
                self.table.insert(
                    Bytes::copy_from_slice(&name),
                    Bytes::copy_from_slice(&value),
                );
                DecodedField {
                    name,
                    value,
                    never_indexed: false,
                }
            } else if first & 0xe0 == 0x20 {
                // dynamic table size update: only before the first field
                if !at_start {
                    return Err(HpackError::BadSizeUpdate);
                }
                let size = decode_int(block, &mut pos, 5)?;
                if size > self.size_limit {
                    return Err(HpackError::BadSizeUpdate);
                }
                self.table.set_max_size(size);
                self.update_required = false;
                continue;
            } else {
                // literal without indexing (0000) or never indexed (0001)
                let never_indexed = first & 0x10 != 0;
                let (name, value) = self.literal(block, &mut pos, 4)?;
                DecodedField {
                    name,
                    value,
                    never_indexed,
                }
            };
            if std::mem::take(&mut at_start) && self.update_required {
                return Err(HpackError::BadSizeUpdate);
            }
            list_size = list_size.saturating_add(entry_size(&field.name, &field.value));
            if list_size <= self.max_list_size {
                emit(field);
            }
        }
        if at_start && self.update_required {
            return Err(HpackError::BadSizeUpdate);
        }
        if list_size > self.max_list_size {
            return Err(HpackError::HeaderListTooLarge);
        }
        Ok(())
    }

    /// The entry at `index` of the combined index space: 1-61 the static
    /// table, then the dynamic table, newest first.
    fn lookup(&self, index: usize) -> Result<(Bytes, Bytes), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex),
            1..=61 => {
                let (name, value) = STATIC_TABLE[index - 1];
                Ok((Bytes::from_static(name), Bytes::from_static(value)))
            }
            _ => self
                .table
                .get(index - 62)
                .cloned()
                .ok_or(HpackError::BadIndex),
        }
    }

    /// A literal field whose first byte has a `prefix`-bit name index (0: a
    /// literal name follows).
    fn literal(
        &self,
        block: &Bytes,
        pos: &mut usize,
        prefix: u8,
    ) -> Result<(Bytes, Bytes), HpackError> {
        let index = decode_int(block, pos, prefix)?;
        let name = if index == 0 {
            decode_string(block, pos)?
        } else {
            self.lookup(index)?.0
        };
        let value = decode_string(block, pos)?;
        Ok((name, value))
    }
}

/// Decode an integer with an `prefix`-bit prefix (RFC 7541 §5.1). Values
/// above 2^32 are refused: no length or index can be that large.
pub(super) fn decode_int(buf: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = ((1u16 << prefix) - 1) as u8;
    let first = *buf.get(*pos).ok_or(HpackError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| HpackError::IntegerOverflow);
        }
        shift += 7;
        // five continuation bytes carry 35 bits: more can only be padding
        // zeros meant to waste our time
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// A string literal (RFC 7541 §5.2): a slice of the block, or the decoded
/// copy of a Huffman-coded one.
fn decode_string(block: &Bytes, pos: &mut usize) -> Result<Bytes, HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = decode_int(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(HpackError::Truncated)?;
    if end > block.len() {
        return Err(HpackError::Truncated);
    }
    let raw = &block[*pos..end];
    let s = if huffman {
        let mut out = Vec::new();
        huffman::decode(raw, &mut out).map_err(|_| HpackError::BadHuffman)?;
        Bytes::from(out)
    } else {
        block.slice(*pos..end)
    };
    *pos = end;
    Ok(s)
}
