//! Protobuf wire encoding of the few ONNX messages the exporter writes.

pub(super) fn attr_int(name: &str, v: i64) -> Vec<u8> {
    let mut a = Vec::new();
    put_bytes(&mut a, 1, name.as_bytes());
    put_varint_field(&mut a, 3, v as u64);
    put_varint_field(&mut a, 20, 2); // INT
    a
}

pub(super) fn attr_float(name: &str, v: f32) -> Vec<u8> {
    let mut a = Vec::new();
    put_bytes(&mut a, 1, name.as_bytes());
    put_key(&mut a, 2, 5);
    a.extend_from_slice(&v.to_le_bytes());
    put_varint_field(&mut a, 20, 1); // FLOAT
    a
}

pub(super) fn attr_ints(name: &str, v: &[i64]) -> Vec<u8> {
    let mut a = Vec::new();
    put_bytes(&mut a, 1, name.as_bytes());
    for &x in v {
        put_varint_field(&mut a, 8, x as u64);
    }
    put_varint_field(&mut a, 20, 7); // INTS
    a
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, ((field << 3) | wire) as u64);
}

pub(super) fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, 0);
    put_varint(out, v);
}

pub(super) fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_encode_as_protobuf() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let mut v = Vec::new();
        put_varint(&mut v, (-1i64) as u64);
        assert_eq!(v.len(), 10);
    }
}
