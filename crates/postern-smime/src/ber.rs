//! BER as real peers write it, reshaped for strict DER decoding — and the bytes a signature
//! was made over, kept as they were received.
//!
//! OpenSSL's `-stream` output uses indefinite lengths; Bouncy Castle writes the encrypted
//! content of an EnvelopedData as a definite-length *constructed* OCTET STRING (chunks); some
//! signers put their signed attributes in an order DER would not (unsorted SET OF). OpenSSL and
//! gpgsm read all of these. Here the input is parsed into a tree (with depth and size bounds),
//! indefinite lengths become definite, constructed OCTET STRINGs become primitive — by their
//! universal tag, or where the CMS schema says a field is an OCTET STRING — and nothing is
//! reordered, so signed attributes keep the order they were signed in.

use postern_core::Error;

/// Deeper nesting than this is refused (a hostile input must not exhaust the stack).
const MAX_DEPTH: usize = 64;

/// One TLV: identifier octets and either primitive content or children.
#[derive(Debug, Clone)]
pub struct Node {
    /// The identifier octets as received.
    pub ident: Vec<u8>,
    /// Primitive content, or children for a constructed element.
    pub body: Body,
}

/// The content of a [`Node`].
#[derive(Debug, Clone)]
pub enum Body {
    /// Primitive content octets.
    Primitive(Vec<u8>),
    /// Constructed: the elements inside, in order.
    Constructed(Vec<Node>),
}

fn malformed(why: &str) -> Error {
    Error::malformed("BER", why)
}

/// Parses one element (and requires nothing after it).
pub fn parse(bytes: &[u8]) -> Result<Node, Error> {
    let (node, end) = parse_at(bytes, 0, 0)?;
    if end != bytes.len() {
        return Err(malformed("data after the element"));
    }
    Ok(node)
}

fn parse_at(b: &[u8], pos: usize, depth: usize) -> Result<(Node, usize), Error> {
    if depth > MAX_DEPTH {
        return Err(malformed("nested too deep"));
    }
    let first = *b.get(pos).ok_or_else(|| malformed("truncated"))?;
    let mut p = pos + 1;
    if first & 0x1f == 0x1f {
        loop {
            let t = *b.get(p).ok_or_else(|| malformed("truncated tag"))?;
            p += 1;
            if t & 0x80 == 0 {
                break;
            }
            if p - pos > 6 {
                return Err(malformed("tag too long"));
            }
        }
    }
    let ident = b.get(pos..p).unwrap_or_default().to_vec();
    let constructed = first & 0x20 != 0;
    let l = *b.get(p).ok_or_else(|| malformed("truncated length"))?;
    p += 1;
    let len = match l {
        0x80 if constructed => None,
        0x80 => return Err(malformed("indefinite length on a primitive")),
        n if n < 0x80 => Some(n as usize),
        n => {
            let count = (n & 0x7f) as usize;
            if count > 8 {
                return Err(malformed("length too long"));
            }
            let mut v: usize = 0;
            for _ in 0..count {
                let d = *b.get(p).ok_or_else(|| malformed("truncated length"))?;
                p += 1;
                v = v
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(d as usize))
                    .ok_or_else(|| malformed("length overflow"))?;
            }
            Some(v)
        }
    };
    if !constructed {
        let len = len.unwrap_or(0);
        let end = p
            .checked_add(len)
            .ok_or_else(|| malformed("length overflow"))?;
        let content = b
            .get(p..end)
            .ok_or_else(|| malformed("truncated content"))?;
        return Ok((
            Node {
                ident,
                body: Body::Primitive(content.to_vec()),
            },
            end,
        ));
    }
    let mut children = Vec::new();
    match len {
        Some(len) => {
            let end = p
                .checked_add(len)
                .ok_or_else(|| malformed("length overflow"))?;
            if end > b.len() {
                return Err(malformed("truncated content"));
            }
            while p < end {
                let (c, next) = parse_at(b.get(..end).unwrap_or_default(), p, depth + 1)?;
                children.push(c);
                p = next;
            }
            Ok((
                Node {
                    ident,
                    body: Body::Constructed(children),
                },
                end,
            ))
        }
        None => loop {
            if b.get(p..p + 2) == Some(&[0, 0]) {
                return Ok((
                    Node {
                        ident,
                        body: Body::Constructed(children),
                    },
                    p + 2,
                ));
            }
            let (c, next) = parse_at(b, p, depth + 1)?;
            children.push(c);
            p = next;
        },
    }
}

impl Node {
    /// The DER-style encoding: definite minimal lengths, content as held.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ident);
        let content = match &self.body {
            Body::Primitive(c) => std::borrow::Cow::Borrowed(c),
            Body::Constructed(kids) => {
                let mut c = Vec::new();
                for k in kids {
                    k.encode_into(&mut c);
                }
                std::borrow::Cow::Owned(c)
            }
        };
        push_len(out, content.len());
        out.extend_from_slice(&content);
    }

    /// The children of a constructed node (empty for a primitive).
    pub fn children(&self) -> &[Node] {
        match &self.body {
            Body::Constructed(k) => k,
            Body::Primitive(_) => &[],
        }
    }

    fn children_mut(&mut self) -> Option<&mut Vec<Node>> {
        match &mut self.body {
            Body::Constructed(k) => Some(k),
            Body::Primitive(_) => None,
        }
    }

    /// Constructed OCTET STRINGs (universal tag 0x24) anywhere below become primitive.
    pub fn flatten_octet_strings(&mut self) -> Result<(), Error> {
        if let Some(kids) = self.children_mut() {
            for k in kids.iter_mut() {
                k.flatten_octet_strings()?;
            }
        }
        if self.ident == [0x24] {
            self.join_chunks(0x04)?;
        }
        Ok(())
    }

    /// A constructed node whose children are OCTET STRING chunks becomes one primitive node
    /// with identifier `ident` and the chunks' contents joined.
    fn join_chunks(&mut self, ident: u8) -> Result<(), Error> {
        let mut joined = Vec::new();
        for k in self.children() {
            match (&k.ident[..], &k.body) {
                ([0x04], Body::Primitive(c)) => joined.extend_from_slice(c),
                _ => {
                    return Err(malformed(
                        "a chunk of an OCTET STRING is not an OCTET STRING",
                    ))
                }
            }
        }
        self.ident = vec![ident];
        self.body = Body::Primitive(joined);
        Ok(())
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// A ContentInfo in BER made decodable as DER: lengths definite, constructed OCTET STRINGs
/// primitive, and the `[0] IMPLICIT` encrypted content of an EnvelopedData or
/// AuthEnvelopedData joined into one primitive `[0]` (the schema says it is an OCTET STRING;
/// without the schema a one-chunk `[0]` could as well be an EXPLICIT tag).
pub fn content_info_to_der(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut ci = parse(bytes)?;
    ci.flatten_octet_strings()?;
    let content_type = ci
        .children()
        .first()
        .map(|n| n.ident.clone())
        .unwrap_or_default();
    let enveloped = ci.children().first().is_some_and(|oid| {
        content_type == [0x06]
            && matches!(&oid.body, Body::Primitive(v) if v == ENVELOPED_DATA || v == AUTH_ENVELOPED_DATA)
    });
    if enveloped {
        if let Some(ed) = ci
            .children_mut()
            .and_then(|k| k.get_mut(1))
            .and_then(|explicit| explicit.children_mut())
            .and_then(|k| k.first_mut())
        {
            join_encrypted_content(ed)?;
        }
    }
    Ok(ci.encode())
}

/// An EnvelopedData or AuthEnvelopedData (its encoding) made DER-shaped as
/// [`content_info_to_der`] does.
pub fn enveloped_to_der(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut ed = parse(bytes)?;
    ed.flatten_octet_strings()?;
    join_encrypted_content(&mut ed)?;
    Ok(ed.encode())
}

/// The `[0] IMPLICIT OCTET STRING` encrypted content, if sent constructed, joined.
fn join_encrypted_content(ed: &mut Node) -> Result<(), Error> {
    // The EncryptedContentInfo is the first SEQUENCE after the RecipientInfos SET.
    let kids = ed
        .children_mut()
        .ok_or_else(|| malformed("EnvelopedData"))?;
    let set = kids
        .iter()
        .position(|k| k.ident == [0x31])
        .ok_or_else(|| malformed("no RecipientInfos"))?;
    if let Some(eci) = kids.iter_mut().skip(set + 1).find(|k| k.ident == [0x30]) {
        if let Some(content) = eci
            .children_mut()
            .and_then(|k| k.iter_mut().find(|k| k.ident == [0xa0]))
        {
            content.join_chunks(0x80)?;
        }
    }
    Ok(())
}

/// The DER of `1.2.840.113549.1.7.3` (id-envelopedData), content octets only.
const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// The DER of `1.2.840.113549.1.9.16.1.23` (id-ct-authEnvelopedData), content octets only.
const AUTH_ENVELOPED_DATA: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// For each SignerInfo of a SignedData (its DER encoding, as [`content_info_to_der`] leaves
/// it), the signed attributes exactly as they were received, with the `[0] IMPLICIT` tag
/// turned back into the SET tag that the signature covers (RFC 5652 §5.4). Re-encoding them
/// would sort an unsorted SET OF and break a signature OpenSSL accepts.
pub fn signed_attributes_as_received(signed_data: &[u8]) -> Vec<Option<Vec<u8>>> {
    let Ok(sd) = parse(signed_data) else {
        return Vec::new();
    };
    let Some(infos) = sd.children().iter().rev().find(|k| k.ident == [0x31]) else {
        return Vec::new();
    };
    infos
        .children()
        .iter()
        .map(|si| {
            si.children()
                .iter()
                .find(|k| k.ident == [0xa0])
                .map(|attrs| {
                    let mut n = attrs.clone();
                    n.ident = vec![0x31];
                    n.encode()
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_lengths_and_chunks_become_der() {
        // SEQUENCE (indefinite) { OCTET STRING constructed (indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        let mut n = parse(&ber).unwrap();
        n.flatten_octet_strings().unwrap();
        assert_eq!(n.encode(), [0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']);
    }

    #[test]
    fn hostile_input_is_an_error() {
        for bad in [
            &[0x30, 0x05, 0x04][..],
            &[0x04, 0x80],
            &[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[0x30, 0x80, 0x04, 0x00],
            &[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 200).flatten().collect();
        assert!(parse(&deep).is_err());
    }
}
