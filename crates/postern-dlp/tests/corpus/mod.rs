//! A labelled corpus generator for accuracy and speed: realistic clinical and billing mail with
//! valid identifiers (positives) and with look-alikes that must not fire (negatives), in plain
//! and HTML bodies, CSV, PDF, DOCX and XLSX attachments, zip archives and attached messages.
//! Deterministic (seeded), so a failure can be reproduced. Labels come from how each message was
//! built; the validity of generated numbers is computed here, independently of the crate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by tests and benches
// Everything sliced here is ASCII this generator made itself.
#![allow(clippy::string_slice)]

use std::io::Write;

/// Detectors the corpus labels.
pub const DETECTORS: [&str; 6] = ["card", "ssn", "npi", "dea", "mbi", "mrn"];

/// The MRN rule the corpus assumes (8 digits with a Luhn check digit, next to a keyword).
pub const MRN_POLICY: &str =
    "[[mrn]]\nname = \"clinic\"\npattern = '\\b(\\d{8})\\b'\nchecksum = \"luhn\"\n";

/// One labelled message.
pub struct Sample {
    /// The raw message.
    pub raw: Vec<u8>,
    /// Detectors that must fire (empty for look-alike messages).
    pub expect: Vec<&'static str>,
    /// What the look-alike or identifier was, for failure messages.
    pub what: String,
    /// Container used.
    pub container: &'static str,
}

/// A small PRNG (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

pub fn luhn_ok(d: &str) -> bool {
    let mut sum = 0;
    for (i, c) in d.bytes().rev().enumerate() {
        let mut v = u32::from(c - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Appends the digit that makes `body` pass Luhn.
pub fn with_luhn(body: &str) -> String {
    for c in 0..10 {
        let s = format!("{body}{c}");
        if luhn_ok(&s) {
            return s;
        }
    }
    unreachable!()
}

/// Appends a digit that makes `body` fail Luhn.
pub fn without_luhn(body: &str) -> String {
    let good = with_luhn(body);
    let last = good.as_bytes()[good.len() - 1] - b'0';
    format!("{body}{}", (last + 1) % 10)
}

fn group(d: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for s in sizes {
        out.push(&d[at..at + s]);
        at += s;
    }
    out.join(sep)
}

pub fn card(r: &mut Rng) -> String {
    let (prefix, len): (String, usize) = match r.below(7) {
        0 => ("4".into(), 16),
        1 => (format!("5{}", 1 + r.below(5)), 16),
        2 => (format!("{}", 2221 + r.below(500)), 16),
        3 => (format!("3{}", r.pick(&[4, 7])), 15),
        4 => ("6011".into(), 16),
        5 => (format!("35{}", 28 + r.below(60)), 16),
        _ => ("4".into(), 13),
    };
    let body = format!("{prefix}{}", r.digits(len - prefix.len() - 1));
    let d = with_luhn(&body);
    match (len, r.below(3)) {
        (15, 0) => group(&d, &[4, 6, 5], " "),
        (16, 0) => group(&d, &[4, 4, 4, 4], " "),
        (16, 1) => group(&d, &[4, 4, 4, 4], "-"),
        _ => d,
    }
}

pub fn ssn(r: &mut Rng) -> (String, bool) {
    let area = loop {
        let a = 1 + r.below(899);
        if a != 666 {
            break a;
        }
    };
    let g = 1 + r.below(99);
    let s = 1 + r.below(9999);
    let formatted = r.below(3) != 0;
    if formatted {
        (format!("{area:03}-{g:02}-{s:04}"), true)
    } else {
        (format!("{area:03}{g:02}{s:04}"), false)
    }
}

pub fn npi(r: &mut Rng) -> String {
    let body = format!("{}{}", 1 + r.below(2), r.digits(8));
    // The check digit is Luhn over 80840 + the number.
    for c in 0..10 {
        let s = format!("80840{body}{c}");
        if luhn_ok(&s) {
            return format!("{body}{c}");
        }
    }
    unreachable!()
}

pub fn npi_bad(r: &mut Rng) -> String {
    let good = npi(r);
    let last = good.as_bytes()[9] - b'0';
    format!("{}{}", &good[..9], (last + 1) % 10)
}

pub fn dea(r: &mut Rng, valid: bool) -> String {
    let first = *r.pick(b"ABFM") as char;
    let second = (b'A' + r.below(26) as u8) as char;
    let d: Vec<u32> = (0..6).map(|_| r.below(10) as u32).collect();
    let sum = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5]);
    let check = if valid {
        sum % 10
    } else {
        (sum + 1 + r.below(9) as u32) % 10
    };
    let digits: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
    format!("{first}{second}{digits}{check}")
}

const MBI_ALPHA: &[u8] = b"ACDEFGHJKMNPQRTUVWXY";

pub fn mbi(r: &mut Rng, valid: bool) -> String {
    let a = |r: &mut Rng| MBI_ALPHA[r.below(MBI_ALPHA.len() as u64) as usize] as char;
    let n = |r: &mut Rng| char::from(b'0' + r.below(10) as u8);
    let an = |r: &mut Rng| if r.below(2) == 0 { a(r) } else { n(r) };
    let first = char::from(b'1' + r.below(9) as u8);
    let mut s = format!(
        "{first}{}{}{}-{}{}{}-{}{}{}{}",
        a(r),
        an(r),
        n(r),
        a(r),
        an(r),
        n(r),
        a(r),
        a(r),
        n(r),
        n(r)
    );
    if !valid {
        // An excluded letter (S, L, O, I, B, Z) where only letters may stand.
        let bad = *r.pick(b"SLOIBZ") as char;
        s.replace_range(1..2, &bad.to_string());
    }
    if r.below(2) == 0 {
        s = s.replace('-', "");
    }
    s
}

pub fn mrn(r: &mut Rng, valid: bool) -> String {
    let body = r.digits(7);
    if valid {
        with_luhn(&body)
    } else {
        without_luhn(&body)
    }
}

const NAMES: &[&str] = &[
    "Jane Roe",
    "John Smith",
    "Maria Garcia",
    "Wei Chen",
    "Aisha Khan",
    "Tom Baker",
    "Olga Ivanova",
];
const CONDITIONS: &[(&str, &str)] = &[
    ("type 2 diabetes", "E11.9"),
    ("essential hypertension", "I10"),
    ("asthma", "J45.909"),
    ("major depressive disorder", "F32.9"),
    ("chronic kidney disease", "N18.3"),
    ("hyperlipidemia", "E78.5"),
];

fn date(r: &mut Rng) -> String {
    format!(
        "{:02}/{:02}/{}",
        1 + r.below(12),
        1 + r.below(28),
        1940 + r.below(80)
    )
}

/// The sentence that carries a valid identifier, and the detector it should fire.
fn positive_sentence(r: &mut Rng, which: &'static str) -> (String, String) {
    match which {
        "card" => {
            let c = card(r);
            let s = match r.below(3) {
                0 => format!("Please charge the copay to card {c}, exp 09/27."),
                1 => format!("Payment method: Visa/MC {c}"),
                _ => format!("The patient paid by credit card number {c} at the front desk."),
            };
            (s, c)
        }
        "ssn" => {
            let (s, formatted) = ssn(r);
            let text = if formatted {
                match r.below(3) {
                    0 => format!("SSN: {s}"),
                    1 => format!("Insured's ID {s} on file."),
                    _ => format!("Patient {s} was registered today."),
                }
            } else {
                match r.below(2) {
                    0 => format!("Social Security Number {s}"),
                    _ => format!("SSN {s} (verified)"),
                }
            };
            (text, s)
        }
        "npi" => {
            let n = npi(r);
            let s = match r.below(2) {
                0 => format!("Referring provider NPI {n}."),
                _ => format!("Prescriber: Dr. Lee, NPI: {n}"),
            };
            (s, n)
        }
        "dea" => {
            let d = dea(r, true);
            (format!("Prescriber DEA number {d}, schedule II."), d)
        }
        "mbi" => {
            let m = mbi(r, true);
            let s = match r.below(2) {
                0 => format!("Medicare MBI {m}"),
                _ => format!("Beneficiary identifier {m} confirmed with CMS."),
            };
            (s, m)
        }
        _ => {
            let m = mrn(r, true);
            let s = match r.below(2) {
                0 => format!("MRN: {m}"),
                _ => format!("Medical record number {m} at St. Elsewhere."),
            };
            (s, m)
        }
    }
}

/// A look-alike sentence that must not fire any detector.
fn negative_sentence(r: &mut Rng) -> String {
    match r.below(19) {
        0 => {
            // An order number of card length that is not a card (no issuer prefix or bad Luhn).
            let n = loop {
                let n = format!("{}{}", 7 + r.below(3), r.digits(15));
                if !luhn_ok(&n) || r.below(2) == 0 {
                    break n;
                }
            };
            format!("Your order #{n} has shipped.")
        }
        1 => format!(
            "Call us at ({}{}) {}-{} or fax {}-{}-{}.",
            2 + r.below(8),
            r.digits(2),
            r.digits(3),
            r.digits(4),
            2 + r.below(8),
            r.digits(2),
            r.digits(7)
        ),
        2 => format!("Tracking: 1Z{}{}{}", r.digits(3), "AB", r.digits(11)),
        3 => format!(
            "USPS tracking {}",
            group(&format!("9400{}", r.digits(18)), &[4, 4, 4, 4, 4, 2], " ")
        ),
        4 => {
            let body = format!("4{}", r.digits(14));
            format!(
                "Test card {} was declined.",
                group(&without_luhn(&body), &[4, 4, 4, 4], " ")
            )
        }
        5 => format!(
            "Appointment on {} at {}:{}0.",
            date(r),
            8 + r.below(9),
            r.below(6)
        ),
        6 => format!(
            "Ship to {} Main St, Springfield, IL {}-{}.",
            r.below(9000) + 100,
            r.digits(5),
            r.digits(4)
        ),
        7 => format!(
            "Wire to IBAN DE{} {} {} {} {} {}",
            r.digits(2),
            r.digits(4),
            r.digits(4),
            r.digits(4),
            r.digits(4),
            r.digits(2)
        ),
        8 => format!("Reference {} for your records.", r.digits(9)),
        9 => {
            let bad = match r.below(3) {
                0 => format!("000-{}-{}", r.digits(2), r.digits(4)),
                1 => format!("666-{:02}-{:04}", 1 + r.below(99), 1 + r.below(9999)),
                _ => format!(
                    "9{}-{:02}-{:04}",
                    r.digits(2),
                    1 + r.below(99),
                    1 + r.below(9999)
                ),
            };
            format!("Employee badge {bad}")
        }
        10 => format!("NPI {} (check digit wrong)", npi_bad(r)),
        11 => format!("DEA {} on the old form", dea(r, false)),
        12 => format!("Medicare MBI {} (typo)", mbi(r, false)),
        13 => format!("MRN {} could not be matched", mrn(r, false)),
        14 => format!(
            "Invoice {}-{} total ${}.{:02}",
            r.digits(4),
            r.digits(6),
            r.below(5000),
            r.below(100)
        ),
        15 => format!(
            "Our provider line is +1 {}{} {} {} (ask for billing).",
            2 + r.below(8),
            r.digits(2),
            r.digits(3),
            r.digits(4)
        ),
        16 => format!(
            "Visit logged {}-{:02}-{:02}T{:02}:{:02}Z, batch {}.",
            2000 + r.below(26),
            1 + r.below(12),
            1 + r.below(28),
            r.below(24),
            r.below(60),
            r.digits(12)
        ),
        17 => format!(
            "Patient portal PIN reset; ticket {} {} {}.",
            r.digits(3),
            r.digits(3),
            r.digits(3)
        ),
        _ => format!(
            "Card ending in {} was charged ${}.",
            r.digits(4),
            r.below(500)
        ),
    }
}

fn clinical_text(r: &mut Rng, sentence: &str) -> String {
    let name = r.pick(NAMES);
    let (cond, icd) = *r.pick(CONDITIONS);
    match r.below(3) {
        0 => format!(
            "Hello,\n\nFollowing up on {name} (DOB {}), seen on {} for {cond} ({icd}).\n{sentence}\nPlease schedule labs in three months.\n\nThanks,\nClinic front office\n",
            date(r),
            date(r)
        ),
        1 => format!(
            "Billing summary\n\nAccount holder: {name}\nServices: office visit, lab panel\n{sentence}\nAmount due: ${}.{:02}\n",
            r.below(900) + 20,
            r.below(100)
        ),
        _ => format!(
            "Hi team,\n\nQuick note before Monday's meeting about the new scheduling system.\n{sentence}\nLet me know if anything is unclear.\n"
        ),
    }
}

const CONTAINERS: [&str; 10] = [
    "plain", "html", "qp", "base64", "csv", "pdf", "docx", "xlsx", "zip", "rfc822",
];

/// Base64 with CRLF every 76 characters, as mail carries it.
pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
        if i % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out
}

fn qp(text: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for b in text.bytes() {
        let piece = match b {
            b'\n' => {
                out.push_str("\r\n");
                col = 0;
                continue;
            }
            b'=' => "=3D".to_string(),
            33..=126 | b' ' => (b as char).to_string(),
            _ => format!("={b:02X}"),
        };
        if col + piece.len() > 72 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out
}

/// A one-page PDF showing `text` line by line (FlateDecode content stream).
pub fn pdf(text: &str) -> Vec<u8> {
    let mut content = String::from("BT /F1 11 Tf 72 760 Td 14 TL\n");
    for line in text.lines() {
        let esc = line
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        content.push_str(&format!("({esc}) Tj T*\n"));
    }
    content.push_str("ET\n");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(content.as_bytes()).unwrap();
    let body = z.finish().unwrap();
    let mut out = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >> endobj\n5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n".to_vec();
    out.extend_from_slice(
        format!(
            "4 0 obj << /Length {} /Filter /FlateDecode >>\nstream\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A zip archive of these files (deflated).
pub fn zip_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// A DOCX with one paragraph per line; words split across runs as Word does.
pub fn docx(text: &str) -> Vec<u8> {
    let mut body = String::new();
    for line in text.lines() {
        let esc = xml_escape(line);
        let mid = esc.len() / 2;
        let mid = (0..=mid)
            .rev()
            .find(|i| {
                esc.is_char_boundary(*i) && !esc[..*i].ends_with('&') && !esc[*i..].starts_with(';')
            })
            .unwrap_or(0);
        body.push_str(&format!(
            "<w:p><w:r><w:t xml:space=\"preserve\">{}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>",
            &esc[..mid],
            &esc[mid..]
        ));
    }
    let doc = format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>");
    zip_of(&[
        ("[Content_Types].xml", b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>".to_vec()),
        ("word/document.xml", doc.into_bytes()),
    ])
}

/// An XLSX whose shared strings are the lines.
pub fn xlsx(text: &str) -> Vec<u8> {
    let sis: String = text
        .lines()
        .map(|l| format!("<si><t>{}</t></si>", xml_escape(l)))
        .collect();
    let shared = format!("<?xml version=\"1.0\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">{sis}</sst>");
    zip_of(&[
        ("xl/sharedStrings.xml", shared.into_bytes()),
        ("xl/worksheets/sheet1.xml", b"<?xml version=\"1.0\"?><worksheet><sheetData><row><c t=\"s\"><v>0</v></c></row></sheetData></worksheet>".to_vec()),
    ])
}

fn message(subject: &str, container: &'static str, text: &str) -> Vec<u8> {
    let head = format!("From: Front Desk <desk@clinic.example>\r\nTo: someone@gmail.test\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n");
    let attach = |ctype: &str, name: &str, data: &[u8]| {
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n--b1\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
            b64(data)
        )
        .into_bytes()
    };
    match container {
        "plain" => format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{}", text.replace('\n', "\r\n")).into_bytes(),
        "html" => {
            let rows: String = text
                .lines()
                .map(|l| format!("<tr><td>{}</td></tr>", xml_escape(l).replace(' ', "&nbsp;")))
                .collect();
            format!("{head}Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><table>{rows}</table></body></html>\r\n").into_bytes()
        }
        "qp" => format!("{head}Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}", qp(text)).into_bytes(),
        "base64" => format!("{head}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n", b64(text.as_bytes())).into_bytes(),
        "csv" => {
            let csv: String = text.lines().map(|l| format!("\"{}\",note\n", l.replace('"', "'"))).collect();
            attach("text/csv", "export.csv", csv.as_bytes())
        }
        "pdf" => attach("application/pdf", "summary.pdf", &pdf(text)),
        "docx" => attach("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "letter.docx", &docx(text)),
        "xlsx" => attach("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "sheet.xlsx", &xlsx(text)),
        "zip" => attach("application/zip", "records.zip", &zip_of(&[("docs/letter.docx", docx(text)), ("readme.txt", b"see letter".to_vec())])),
        _ => {
            let inner = format!("From: lab@clinic.example\r\nSubject: forwarded\r\nContent-Type: text/plain\r\n\r\n{}", text.replace('\n', "\r\n"));
            format!("{head}Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nForwarding.\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--b1--\r\n").into_bytes()
        }
    }
}

/// `n` positives (round-robin over detectors and containers) and `n` look-alike messages.
pub fn corpus(n: usize, seed: u64) -> Vec<Sample> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let which = DETECTORS[i % DETECTORS.len()];
        let container = CONTAINERS[(i / DETECTORS.len()) % CONTAINERS.len()];
        let (sentence, value) = positive_sentence(&mut r, which);
        let text = clinical_text(&mut r, &sentence);
        out.push(Sample {
            raw: message("Follow-up", container, &text),
            expect: vec![which],
            what: value,
            container,
        });
    }
    for i in 0..n {
        let container = CONTAINERS[i % CONTAINERS.len()];
        let a = negative_sentence(&mut r);
        let b = negative_sentence(&mut r);
        let text = clinical_text(&mut r, &format!("{a}\n{b}"));
        out.push(Sample {
            raw: message("Your records", container, &text),
            expect: vec![],
            what: format!("{a} | {b}"),
            container,
        });
    }
    out
}

const PROSE: &[&str] = &[
    "Thank you for referring this patient to our clinic for further evaluation.",
    "She reports improved energy since the change in medication and denies chest pain.",
    "We reviewed the imaging together and agreed on a conservative plan for now.",
    "Please let the front office know if the family prefers a morning appointment.",
    "The care team will call with results as soon as they are available.",
    "Our billing department can answer questions about coverage and payment plans.",
    "Remember to bring a list of current medications and any recent outside records.",
    "The committee meets next week to discuss the new intake process and staffing.",
    "Parking is available in the garage behind the main building on weekdays.",
    "If symptoms worsen before the visit, go to the nearest emergency department.",
];

/// About `len` bytes of ordinary letter text: sentences without numbers, and one corpus
/// message body (with its identifier or look-alike) every ten kilobytes or so.
pub fn typical_text(len: usize, seed: u64) -> String {
    let mut r = Rng::new(seed);
    let bodies: Vec<String> = corpus(50, seed)
        .into_iter()
        .filter(|s| s.container == "plain")
        .filter_map(|s| {
            let raw = String::from_utf8_lossy(&s.raw).into_owned();
            raw.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
        })
        .collect();
    let mut out = String::with_capacity(len + 1024);
    let mut next_body = 10_000;
    while out.len() < len {
        let sentence: &str = PROSE[r.below(PROSE.len() as u64) as usize];
        out.push_str(sentence);
        out.push(if r.below(5) == 0 { '\n' } else { ' ' });
        if out.len() >= next_body && !bodies.is_empty() {
            out.push_str(r.pick(&bodies).as_str());
            next_body += 10_000;
        }
    }
    out
}
