//! Ways a careless or evasive sender writes a card number or an SSN (issue 11), each a whole
//! message labelled with its technique, and look-alikes that must stay clean. Generated here,
//! so the corpus is ours: it shows these techniques are handled, not real-world accuracy.

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

/// Messages that carry a valid card number or SSN, each with its technique.
pub fn positives() -> Vec<(&'static str, Vec<u8>)> {
    let utf16: Vec<u8> = "Patient SSN 078-05-1120"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut utf16_msg = b"From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    utf16_msg.extend_from_slice(base64_encode(&utf16).as_bytes());
    utf16_msg.extend_from_slice(b"\r\n");
    let csv = b"name,card\r\nJane Roe,4111 1111 1111 1111\r\n";
    vec![
        ("zero-width space inside groups", plain("card 41\u{200B}11 1111 1111 1111")),
        ("soft hyphen inside a group", plain("card 4111 11\u{00AD}11 1111 1111")),
        ("no-break spaces", plain("card 4111\u{00A0}1111\u{00A0}1111\u{00A0}1111")),
        ("narrow no-break spaces", plain("SSN 078\u{202F}05\u{202F}1120")),
        ("en and em dashes", plain("SSN 078\u{2013}05\u{2014}1120")),
        ("dots", plain("member 219.09.9999 on file")),
        ("slashes", plain("member 219/09/9999 on file")),
        ("double spaces", plain("card 4111  1111  1111  1111")),
        ("tabs", plain("card\t4111\t1111\t1111\t1111")),
        ("mixed separators", plain("card 4111-1111 1111.1111")),
        ("one group per line", plain("card\r\n4111\r\n1111\r\n1111\r\n1111\r\nthanks")),
        ("full-width digits", plain("SSN \u{FF10}\u{FF17}\u{FF18}-\u{FF10}\u{FF15}-\u{FF11}\u{FF11}\u{FF12}\u{FF10}")),
        ("Arabic-Indic digits", plain("SSN \u{0660}\u{0667}\u{0668}-\u{0660}\u{0665}-\u{0661}\u{0661}\u{0662}\u{0660}")),
        ("CVV appended", plain("card 4111 1111 1111 1111 123")),
        ("expiry appended", plain("card 4111 1111 1111 1111 12/27")),
        ("HTML table cells", html("<table><tr><td>4111</td><td>1111</td><td>1111</td><td>1111</td></tr></table>")),
        ("empty inline element", html("<p>card 4<b></b>111 1111 1111 1111</p>")),
        ("hidden digit", html("<p>card 4111 11<span style=\"display:none\">9</span>11 1111 1111</p>")),
        ("entities without semicolon", html("<p>card 4111&nbsp1111&nbsp1111&nbsp1111</p>")),
        ("zero-width entity", html("<p>card 41&#8203;11 1111 1111 1111</p>")),
        ("X- header", b"From: ada@clinic.example\r\nTo: someone@gmail.test\r\nX-Ref: SSN 078-05-1120\r\nSubject: x\r\n\r\nhello\r\n".to_vec()),
        ("Comments header", b"From: ada@clinic.example\r\nTo: someone@gmail.test\r\nComments: 4111 1111 1111 1111\r\nSubject: x\r\n\r\nhello\r\n".to_vec()),
        ("multipart preamble", b"From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\nSSN 078-05-1120\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n".to_vec()),
        ("UTF-16 labelled UTF-8", utf16_msg),
        ("base64 inside a text body", plain(&format!("decode this:\r\n{}", base64_encode(b"Patient SSN 078-05-1120 on file")))),
        ("RTF escapes", attachment("letter.rtf", "application/rtf", br"{\rtf1\ansi SSN \'30\'37\'38-05-1120\par}")),
        ("CSV as octet-stream, unknown extension", attachment("data.q7", "application/octet-stream", csv)),
        ("gzip", attachment("data.gz", "application/octet-stream", &gzip(csv))),
        ("attachment file name", attachment("SSN 078-05-1120.txt", "text/plain", b"see name")),
    ]
}

/// Look-alikes that the text itself labels as something else: they must stay clean.
pub fn negatives() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("room number", plain("Your room 219-09-9999 is ready.")),
        (
            "ticket number",
            plain("Ticket 219.09.9999 has been closed."),
        ),
        (
            "order number",
            plain("Order 4111 1111 1111 1111 shipped today."),
        ),
        ("claim number", plain("Claim 219-09-9999 was paid.")),
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
    ]
}
