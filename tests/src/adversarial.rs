//! Ways a careless or evasive sender writes a card number or an SSN (issue 11), each a whole
//! message labelled with its technique, and look-alikes that must stay clean. Generated here,
//! so the corpus is ours: it shows these techniques are handled, not real-world accuracy.
// The numbers sliced here are ASCII digits this module generated.
#![allow(clippy::string_slice)]

use crate::base64_encode;

/// A message to an ordinary address with `body` as its text/plain body.
fn plain(body: &str) -> Vec<u8> {
    format!(
        "From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: hello\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn html(body: &str) -> Vec<u8> {
    format!(
        "From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: hello\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>{body}</body></html>\r\n"
    )
    .into_bytes()
}

fn attachment(name: &str, ctype: &str, data: &[u8]) -> Vec<u8> {
    let mut b64 = String::new();
    for chunk in base64_encode(data).as_bytes().chunks(76) {
        b64.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        b64.push_str("\r\n");
    }
    format!(
        "From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}--b--\r\n"
    )
    .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // A stored (uncompressed) deflate stream is valid gzip and needs no compressor here.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for (i, chunk) in data.chunks(65535).enumerate() {
        let last = (i + 1) * 65535 >= data.len();
        out.push(u8::from(last));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    if data.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small deterministic generator (xorshift), so a failing case can be reproduced.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A valid 16-digit Visa number (Luhn), as 4 groups.
fn card(r: &mut Rng) -> [String; 4] {
    let mut d: Vec<u32> = vec![4];
    for _ in 0..14 {
        d.push(r.below(10) as u32);
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 0 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    d.push((10 - sum % 10) % 10);
    let s: String = d
        .iter()
        .map(|x| char::from_digit(*x, 10).unwrap_or('0'))
        .collect();
    [0, 4, 8, 12].map(|i| s.get(i..i + 4).unwrap_or_default().to_string())
}

/// A valid SSN (SSA ranges), as its three groups.
fn ssn(r: &mut Rng) -> [String; 3] {
    let area = loop {
        let a = 1 + r.below(899);
        if a != 666 {
            break a;
        }
    };
    [
        format!("{area:03}"),
        format!("{:02}", 1 + r.below(99)),
        format!("{:04}", 1 + r.below(9999)),
    ]
}

/// `n` variants of every technique, each with freshly generated numbers.
pub fn positives_n(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    for _ in 0..n {
        let c = card(&mut r);
        let s = ssn(&mut r);
        out.extend(positives_with(&c, &s));
    }
    out
}

/// `n` variants of every look-alike.
pub fn negatives_n(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut r = Rng(0xD1B5_4A32_D192_ED03);
    let mut out = Vec::new();
    for _ in 0..n {
        let c = card(&mut r);
        let s = ssn(&mut r);
        out.extend(negatives_with(&c, &s));
    }
    out
}

/// Messages that carry a valid card number or SSN, each with its technique.
pub fn positives() -> Vec<(&'static str, Vec<u8>)> {
    let c = ["4111", "1111", "1111", "1111"].map(String::from);
    let s = ["078", "05", "1120"].map(String::from);
    positives_with(&c, &s)
}

fn positives_with(c: &[String; 4], s: &[String; 3]) -> Vec<(&'static str, Vec<u8>)> {
    let card_sp = c.join(" ");
    let ssn_dash = s.join("-");
    let digits = |t: &str, zero: u32| -> String {
        t.chars()
            .map(|ch| match ch.to_digit(10) {
                Some(d) => char::from_u32(zero + d).unwrap_or(ch),
                None => ch,
            })
            .collect()
    };
    let utf16: Vec<u8> = format!("Patient SSN {ssn_dash}")
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut utf16_msg = b"From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    utf16_msg.extend_from_slice(base64_encode(&utf16).as_bytes());
    utf16_msg.extend_from_slice(b"\r\n");
    let csv = format!("name,card\r\nJane Roe,{card_sp}\r\n").into_bytes();
    let csv = csv.as_slice();
    vec![
        ("zero-width space inside groups", plain(&format!("card {}\u{200B}{} {} {} {}", &c[0][..2], &c[0][2..], c[1], c[2], c[3]))),
        ("soft hyphen inside a group", plain(&format!("card {} {}\u{00AD}{} {} {}", c[0], &c[1][..2], &c[1][2..], c[2], c[3]))),
        ("no-break spaces", plain(&format!("card {}", c.join("\u{00A0}")))),
        ("narrow no-break spaces", plain(&format!("SSN {}", s.join("\u{202F}")))),
        ("en and em dashes", plain(&format!("SSN {}\u{2013}{}\u{2014}{}", s[0], s[1], s[2]))),
        ("dots", plain(&format!("member {} on file", s.join(".")))),
        ("slashes", plain(&format!("member {} on file", s.join("/")))),
        ("double spaces", plain(&format!("card {}", c.join("  ")))),
        ("tabs", plain(&format!("card\t{}", c.join("\t")))),
        ("mixed separators", plain(&format!("card {}-{} {}.{}", c[0], c[1], c[2], c[3]))),
        ("one group per line", plain(&format!("card\r\n{}\r\nthanks", c.join("\r\n")))),
        ("full-width digits", plain(&format!("SSN {}", digits(&ssn_dash, 0xFF10)))),
        ("Arabic-Indic digits", plain(&format!("SSN {}", digits(&ssn_dash, 0x0660)))),
        ("CVV appended", plain(&format!("card {card_sp} 123"))),
        ("expiry appended", plain(&format!("card {card_sp} 12/27"))),
        ("HTML table cells", html(&format!("<table><tr><td>{}</td></tr></table>", c.join("</td><td>")))),
        ("empty inline element", html(&format!("<p>card {}<b></b>{} {} {} {}</p>", &c[0][..1], &c[0][1..], c[1], c[2], c[3]))),
        ("hidden digit", html(&format!("<p>card {} {}<span style=\"display:none\">9</span>{} {} {}</p>", c[0], &c[1][..2], &c[1][2..], c[2], c[3]))),
        ("entities without semicolon", html(&format!("<p>card {}</p>", c.join("&nbsp")))),
        ("zero-width entity", html(&format!("<p>card {}&#8203;{} {} {} {}</p>", &c[0][..2], &c[0][2..], c[1], c[2], c[3]))),
        ("X- header", format!("From: ada@clinic.example\r\nTo: someone@gmail.test\r\nX-Ref: SSN {ssn_dash}\r\nSubject: x\r\n\r\nhello\r\n").into_bytes()),
        ("Comments header", format!("From: ada@clinic.example\r\nTo: someone@gmail.test\r\nComments: {card_sp}\r\nSubject: x\r\n\r\nhello\r\n").into_bytes()),
        ("multipart preamble", format!("From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\nSSN {ssn_dash}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n").into_bytes()),
        ("UTF-16 labelled UTF-8", utf16_msg),
        ("base64 inside a text body", plain(&format!("decode this:\r\n{}", base64_encode(format!("Patient SSN {ssn_dash} on file").as_bytes())))),
        ("RTF escapes", attachment("letter.rtf", "application/rtf", format!("{{\\rtf1\\ansi SSN {}-{}-{}\\par}}", s[0].bytes().map(|b| format!("\\'{b:02x}")).collect::<String>(), s[1], s[2]).as_bytes())),
        ("CSV as octet-stream, unknown extension", attachment("data.q7", "application/octet-stream", csv)),
        ("gzip", attachment("data.gz", "application/octet-stream", &gzip(csv))),
        ("attachment file name", attachment(&format!("SSN {ssn_dash}.txt"), "text/plain", b"see name")),
        ("EBCDIC export as octet-stream", attachment("report.dat", "application/octet-stream", &ebcdic(&format!("Patient SSN {ssn_dash}, card {card_sp}")))),
        // Issue 22.11.
        ("image alt text", html(&format!("<img alt=\"card {card_sp}\" src=\"cid:x\">"))),
        ("title attribute", html(&format!("<span title='SSN {ssn_dash}'>details</span>"))),
        ("hidden form input", html(&format!("<form><input type=hidden name=n value=\"{}\"></form>", c.concat()))),
        ("data URI", html(&format!("<a href=\"data:text/plain;base64,{}\">file</a>", base64_encode(format!("Patient SSN {ssn_dash}").as_bytes())))),
        ("combining accents", plain(&format!("card {}", card_sp.chars().flat_map(|ch| if ch.is_ascii_digit() { vec![ch, '\u{301}'] } else { vec![ch] }).collect::<String>()))),
        ("JSON array of digits", plain(&format!("{{\"pan\": [{}]}}", c.concat().chars().map(String::from).collect::<Vec<_>>().join(",")))),
        ("bzip2", attachment("data.csv.bz2", "application/octet-stream", &bzip2_of(csv))),
    ]
}

fn bzip2_of(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Text in EBCDIC (IBM code page 037), for the letters, digits and punctuation used here; the
/// layout is IBM's published one, written out here rather than taken from the DLP's table.
fn ebcdic(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|b| match b {
            b'0'..=b'9' => 0xF0 + (b - b'0'),
            b'a'..=b'i' => 0x81 + (b - b'a'),
            b'j'..=b'r' => 0x91 + (b - b'j'),
            b's'..=b'z' => 0xA2 + (b - b's'),
            b'A'..=b'I' => 0xC1 + (b - b'A'),
            b'J'..=b'R' => 0xD1 + (b - b'J'),
            b'S'..=b'Z' => 0xE2 + (b - b'S'),
            b'-' => 0x60,
            b',' => 0x6B,
            b'.' => 0x4B,
            b':' => 0x7A,
            b'/' => 0x61,
            _ => 0x40,
        })
        .collect()
}

/// Look-alikes that the text itself labels as something else: they must stay clean.
pub fn negatives() -> Vec<(&'static str, Vec<u8>)> {
    let c = ["4111", "1111", "1111", "1111"].map(String::from);
    let s = ["219", "09", "9999"].map(String::from);
    negatives_with(&c, &s)
}

fn negatives_with(c: &[String; 4], s: &[String; 3]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "room number",
            plain(&format!("Your room {} is ready.", s.join("-"))),
        ),
        (
            "ticket number",
            plain(&format!("Ticket {} has been closed.", s.join("."))),
        ),
        (
            "order number",
            plain(&format!("Order {} shipped today.", c.join(" "))),
        ),
        (
            "claim number",
            plain(&format!("Claim {} was paid.", s.join("-"))),
        ),
        (
            "timestamp",
            plain("Logged at 2024-01-15 10.30.45 by the server."),
        ),
        (
            "phone with dots",
            plain("Call us on 555.123.4567 any time."),
        ),
        ("version string", plain("Upgrade to 10.2.3.4 tomorrow.")),
        ("date", plain("Meeting on 12/05/2024.")),
        // Issue 22.11: the new readers must not make look-alikes of these.
        (
            "image alt text with a room number",
            html(&format!("<img alt=\"Room {}\" src=\"cid:x\">", s.join("-"))),
        ),
        (
            "JSON array of small numbers",
            plain("{\"scores\": [3,1,4,1,5,9,2,6,5,3]}"),
        ),
        (
            "accented words",
            plain("Re\u{301}sume\u{301} and cafe\u{301} notes for the team."),
        ),
    ]
}
