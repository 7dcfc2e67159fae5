//! Hostile and unreadable content: a zip bomb, archives nested too deep, a time limit, a
//! password-protected zip entry and an encrypted PDF, an S/MIME attachment, and arbitrary bytes.
//! Each ends in a verdict that says what happened (the policy decides the action), never a
//! panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod corpus;

use std::io::Write;

use postern_dlp::{Action, DlpPolicy, Inspector, Limits, Note};

fn attach(name: &str, ctype: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "From: a@clinic.example\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nattached\r\n--b\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        corpus::b64(data)
    )
    .into_bytes()
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let owned: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (*n, d.to_vec())).collect();
    corpus::zip_of(&owned)
}

fn inspector() -> Inspector {
    Inspector::new(DlpPolicy::default()).unwrap()
}

fn limit_notes(v: &postern_dlp::Verdict) -> Vec<String> {
    v.notes
        .iter()
        .filter_map(|n| match n {
            Note::Limit { what } => Some(what.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_zip_bomb_stops_at_the_ratio_and_is_quarantined() {
    // 200 MB of zeros compresses to about 200 KB.
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("zeros.txt", opts).unwrap();
    let chunk = vec![b'0'; 1 << 20];
    for _ in 0..200 {
        z.write_all(&chunk).unwrap();
    }
    let bomb = z.finish().unwrap().into_inner();
    assert!(bomb.len() < 1 << 20);
    let start = std::time::Instant::now();
    let v = inspector().inspect(&attach("bomb.zip", "application/zip", &bomb));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    let notes = limit_notes(&v);
    assert!(
        notes.iter().any(|w| w.contains("expands over")),
        "{notes:?}"
    );
    assert_eq!(v.action, Action::Quarantine, "{v:?}");
}

#[test]
fn nesting_deeper_than_the_limit_is_reported() {
    let mut inner = zip_of(&[("note.txt", b"SSN 078-05-1120")]);
    for i in 0..8 {
        inner = zip_of(&[(if i % 2 == 0 { "a.zip" } else { "b.zip" }, &inner)]);
    }
    let v = inspector().inspect(&attach("nested.zip", "application/zip", &inner));
    assert!(
        limit_notes(&v).iter().any(|w| w.contains("nesting")),
        "{v:?}"
    );
    assert_eq!(v.action, Action::Quarantine);
    // Within the limit the SSN is found.
    let shallow = zip_of(&[("inner.zip", &zip_of(&[("note.txt", b"SSN 078-05-1120")]))]);
    let v = inspector().inspect(&attach("nested.zip", "application/zip", &shallow));
    assert_eq!(v.count(&postern_dlp::Detector::Ssn), 1, "{v:?}");
    assert!(
        v.hits[0].locations[0].contains("nested.zip/inner.zip/note.txt")
            || v.hits
                .iter()
                .any(|h| h.locations.iter().any(|l| l.contains("note.txt"))),
        "{v:?}"
    );
}

#[test]
fn the_time_limit_ends_inspection_with_a_note() {
    let policy = DlpPolicy {
        limits: Limits {
            max_millis: 0,
            ..Limits::default()
        },
        ..DlpPolicy::default()
    };
    let i = Inspector::new(policy).unwrap();
    let many: Vec<(String, Vec<u8>)> = (0..50)
        .map(|k| (format!("f{k}.txt"), vec![b'a'; 10_000]))
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let v = i.inspect(&attach("many.zip", "application/zip", &zip_of(&refs)));
    assert!(
        limit_notes(&v).iter().any(|w| w.contains("took over")),
        "{v:?}"
    );
}

#[test]
fn encrypted_attachments_are_reported_and_policy_decides() {
    // A zip entry with the "encrypted" flag (general purpose bit 0) in both headers.
    let mut z = zip_of(&[("secret.txt", b"whatever")]);
    for sig in [[0x50u8, 0x4b, 0x03, 0x04], [0x50, 0x4b, 0x01, 0x02]] {
        let at = z.windows(4).position(|w| w == sig).unwrap();
        let flag_at = if sig[2] == 3 { at + 6 } else { at + 8 };
        z[flag_at] |= 1;
    }
    let v = inspector().inspect(&attach("locked.zip", "application/zip", &z));
    assert!(
        v.notes.iter().any(|n| matches!(n, Note::Encrypted { .. })),
        "{v:?}"
    );
    assert_eq!(v.action, Action::Quarantine);

    let pdf = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << /Root 1 0 R /Encrypt 2 0 R >>\n%%EOF\n";
    let v = inspector().inspect(&attach("locked.pdf", "application/pdf", pdf));
    assert!(
        v.notes.iter().any(|n| matches!(n, Note::Encrypted { .. })),
        "{v:?}"
    );
    let v = inspector().inspect(&attach(
        "smime.p7m",
        "application/pkcs7-mime",
        b"0\x80\x06\x09",
    ));
    assert!(
        v.notes.iter().any(|n| matches!(n, Note::Encrypted { .. })),
        "{v:?}"
    );

    // A policy can let encrypted content through with a tag instead.
    let tagging =
        Inspector::new(DlpPolicy::from_toml("on_encrypted = \"tag\"\n").unwrap()).unwrap();
    let v = tagging.inspect(&attach("locked.pdf", "application/pdf", pdf));
    assert_eq!(v.action, Action::Tag);
}

#[test]
fn broken_attachments_are_unreadable_not_fatal() {
    for (name, ctype, data) in [
        ("x.zip", "application/zip", &b"PK\x03\x04 not really"[..]),
        ("x.docx", "application/octet-stream", b"garbage"),
        (
            "x.pdf",
            "application/pdf",
            b"%PDF-1.4\n4 0 obj << /Filter /FlateDecode >> stream\n\xff\xfe\nendstream",
        ),
    ] {
        let v = inspector().inspect(&attach(name, ctype, data));
        assert!(v.action <= Action::Quarantine, "{v:?}");
    }
}

#[test]
fn pdf_and_office_attachments_from_the_corpus_builders_are_read() {
    let text = "Patient Jane Roe\nSSN 078-05-1120\nCard 4111 1111 1111 1111";
    for (name, ctype, data) in [
        ("a.pdf", "application/pdf", corpus::pdf(text)),
        (
            "a.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            corpus::docx(text),
        ),
        (
            "a.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            corpus::xlsx(text),
        ),
    ] {
        let v = inspector().inspect(&attach(name, ctype, &data));
        assert_eq!(
            (
                v.count(&postern_dlp::Detector::Ssn),
                v.count(&postern_dlp::Detector::Card)
            ),
            (1, 1),
            "{name}: {v:?}"
        );
        assert!(
            v.hits
                .iter()
                .all(|h| h.locations.iter().all(|l| l.contains(name))),
            "{v:?}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
        let i = inspector();
        let _ = i.inspect(&data);
        let _ = i.inspect(&attach("x.zip", "application/zip", &data));
        let _ = i.inspect(&attach("x.pdf", "application/pdf", &[b"%PDF-1.4\n".as_slice(), &data].concat()));
        let _ = i.inspect_text(&String::from_utf8_lossy(&data));
    }
}

#[test]
fn legacy_binary_documents_are_reported_not_passed_silently() {
    let v = inspector().inspect(&attach(
        "old.doc",
        "application/msword",
        b"\xd0\xcf\x11\xe0 binary",
    ));
    assert!(
        v.notes
            .iter()
            .any(|n| matches!(n, Note::Unreadable { why, .. } if why.contains("legacy"))),
        "{v:?}"
    );
    assert_eq!(v.action, Action::Tag);
}

mod normalised_forms {
    use proptest::prelude::*;

    /// Issue 11 (first part): whatever mix of invisible characters, separators (every space and
    /// dash form, dots, slashes, tabs, double spaces, line breaks) and digits of other scripts is
    /// put into a valid identifier, it is still found.
    fn disguise(value: &str, choices: &[u8]) -> String {
        let mut out = String::new();
        for (i, c) in value.chars().enumerate() {
            let pick = choices.get(i).copied().unwrap_or(0);
            match c {
                '0'..='9' => {
                    let d = c.to_digit(10).unwrap();
                    let zero = [0x30, 0xFF10, 0x0660, 0x0966][usize::from(pick % 4)];
                    out.push(char::from_u32(zero + d).unwrap());
                }
                ' ' | '-' => out.push_str(
                    [
                        " ", "-", "\u{00A0}", "\u{202F}", "\u{2013}", "\u{2014}", "\u{2212}", ".",
                        "/", "\t", "  ", "\r\n", " - ",
                    ][usize::from(pick % 13)],
                ),
                c => out.push(c),
            }
            match pick / 13 % 6 {
                1 => out.push('\u{200B}'),
                2 => out.push('\u{00AD}'),
                3 => out.push('\u{2060}'),
                4 => out.push('\u{FEFF}'),
                _ => {}
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn disguised_identifiers_are_still_found(
            choices in proptest::collection::vec(any::<u8>(), 24),
            which in 0usize..3,
        ) {
            let (value, detector) = &[
                ("4111 1111 1111 1111", postern_dlp::Detector::Card),
                ("078-05-1120", postern_dlp::Detector::Ssn),
                ("5500-0000-0000-0004", postern_dlp::Detector::Card),
            ][which];
            let text = format!("Patient billing: {} thanks", disguise(value, &choices));
            let inspector =
                postern_dlp::Inspector::new(postern_dlp::DlpPolicy::default()).unwrap();
            let v = inspector.inspect_text(&text);
            prop_assert!(
                v.hits.iter().any(|h| h.detector == *detector),
                "{detector} not found in {text:?}: {v:?}"
            );
        }
    }

    /// The same through a whole message: an HTML body whose number has `&#8203;` and `&shy;`
    /// inside its groups and `&nbsp;` between them.
    #[test]
    fn html_entities_for_invisible_characters_do_not_hide_a_card() {
        let inspector = postern_dlp::Inspector::new(postern_dlp::DlpPolicy::default()).unwrap();
        let msg = b"From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Card: 41&#8203;11&nbsp;11&shy;11&nbsp;1111&nbsp;1111 exp soon</p>\r\n";
        let v = inspector.inspect(msg);
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Card),
            "{v:?}"
        );
    }
}

/// Issue 11 (first part): where numbers hide in HTML and around the body, each caught.
#[test]
fn numbers_split_by_markup_or_hidden_in_headers_and_names_are_found() {
    let inspector = Inspector::new(DlpPolicy::default()).unwrap();
    let html = |body: &str| {
        format!(
            "From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "one group per table cell",
            html("<table><tr><td>4111</td><td>1111</td><td>1111</td><td>1111</td></tr></table>"),
        ),
        (
            "empty inline elements inside a group",
            html("<p>Card 4<b></b>111 11<span></span>11 1111 1111</p>"),
        ),
        (
            "a hidden digit inside the number",
            html("<p>Card 4111 11<span style=\"display: none\">9</span>11 1111 1111</p>"),
        ),
        (
            "a hidden element holding the whole number",
            html("<p>Hello</p><div hidden>SSN 078-05-1120</div>"),
        ),
        ("entities without semicolons", html("<p>Card 4111&nbsp1111&#160 1111&nbsp1111</p>")),
        (
            "an X- header",
            b"From: a@b.test\r\nTo: c@d.test\r\nX-Patient-Ref: SSN 078-05-1120\r\nSubject: x\r\n\r\nhello\r\n".to_vec(),
        ),
        (
            "a Comments header",
            b"From: a@b.test\r\nTo: c@d.test\r\nComments: card 4111 1111 1111 1111\r\nSubject: x\r\n\r\nhello\r\n".to_vec(),
        ),
        (
            "an attachment file name (RFC 2231)",
            b"From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''SSN%20078-05-1120.bin\r\n\r\nxyz\r\n--b--\r\n".to_vec(),
        ),
    ];
    for (what, msg) in cases {
        let v = inspector.inspect(&msg);
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Card
                    || h.detector == postern_dlp::Detector::Ssn),
            "{what}: {v:?}"
        );
        assert_ne!(v.action, Action::Allow, "{what}");
    }
}

/// Issue 11 (first part): the type comes from the bytes, not the label or the name; gzip and
/// tar are opened.
#[test]
fn containers_are_recognised_by_their_bytes() {
    let phi = "Patient SSN 078-05-1120, card 4111 1111 1111 1111";
    let docx = corpus::docx(phi);
    let pdf = corpus::pdf(phi);
    let zip = zip_of(&[("notes.txt", phi.as_bytes())]);
    let csv = b"name,ssn\nJane Roe,078-05-1120\n".to_vec();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(csv.as_slice()).unwrap();
        e.finish().unwrap()
    };
    let tar = {
        let mut header = [0u8; 512];
        header[..8].copy_from_slice(b"list.csv");
        header[124..135].copy_from_slice(format!("{:011o}", csv.len()).as_bytes());
        header[156] = b'0';
        header[257..262].copy_from_slice(b"ustar");
        let mut t = header.to_vec();
        t.extend_from_slice(&csv);
        t.resize(t.len().div_ceil(512) * 512 + 1024, 0);
        t
    };
    let tgz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    for (what, data) in [
        ("DOCX", docx),
        ("PDF", pdf),
        ("zip", zip),
        ("CSV", csv.clone()),
        ("gzip", gz),
        ("tar", tar),
        ("tar.gz", tgz),
    ] {
        let v = inspector().inspect(&attach("data.bin", "application/octet-stream", &data));
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Ssn),
            "{what} sent as application/octet-stream: {v:?}"
        );
        assert_ne!(v.action, Action::Allow, "{what}");
    }
}

/// Issue 11 (first part): UTF-16LE text labelled UTF-8 still shows its numbers.
#[test]
fn utf16_text_under_a_utf8_label_is_read() {
    let utf16: Vec<u8> = "Patient SSN 078-05-1120"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut msg = b"From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    msg.extend_from_slice(corpus::b64(&utf16).as_bytes());
    msg.extend_from_slice(b"\r\n");
    let v = inspector().inspect(&msg);
    assert!(
        v.hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Ssn),
        "{v:?}"
    );
}

/// Issue 11 (first part): RTF escapes do not hide digits, as an attachment or a body part.
#[test]
fn rtf_escapes_are_read() {
    let rtf = br"{\rtf1\ansi{\fonttbl{\f0 Arial;}}\f0 Patient SSN \'30\'37\'38-\'30\'35-1120\par}";
    let v = inspector().inspect(&attach("letter.rtf", "application/rtf", rtf));
    assert!(
        v.hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Ssn),
        "{v:?}"
    );
    let mut body =
        b"From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: text/rtf\r\n\r\n".to_vec();
    body.extend_from_slice(rtf);
    let v = inspector().inspect(&body);
    assert!(
        v.hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Ssn),
        "{v:?}"
    );
}

/// Issue 11 (first part): a multipart preamble and epilogue leave with the message.
#[test]
fn preamble_and_epilogue_are_inspected() {
    for (before, after) in [
        ("Patient SSN 078-05-1120", ""),
        ("", "card 4111 1111 1111 1111"),
    ] {
        let msg = format!(
            "From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n{before}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n{after}\r\n"
        );
        let v = inspector().inspect(msg.as_bytes());
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Ssn
                    || h.detector == postern_dlp::Detector::Card),
            "{before}{after}: {v:?}"
        );
    }
}

/// Issue 11 (first part): base64 text pasted inside a plain-text body is read.
#[test]
fn base64_text_inside_a_text_body_is_read() {
    let hidden = corpus::b64(b"Patient SSN 078-05-1120, DOB 01/02/1960");
    let msg = format!(
        "From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\nPlease decode:\r\n{hidden}\r\nthanks\r\n"
    );
    let v = inspector().inspect(msg.as_bytes());
    assert!(
        v.hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Ssn),
        "{v:?}"
    );
}

/// Issue 11 (first part): a file embedded in a DOCX, base64 text in a DOCX, and data appended
/// after a zip's end record are read.
#[test]
fn embedded_objects_base64_in_documents_and_trailing_data_are_read() {
    let phi = b"name,ssn\nJane Roe,078-05-1120\n";
    let inner = zip_of(&[("notes.csv", phi)]);
    let docx_with_embedding = {
        let base = corpus::docx("Quarterly letter, nothing sensitive here.");
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(base)).unwrap();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..z.len() {
            let f = z.by_index(i).unwrap();
            w.raw_copy_file(f).unwrap();
        }
        w.start_file(
            "word/embeddings/oleObject1.bin",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(&inner).unwrap();
        w.finish().unwrap().into_inner()
    };
    let docx_with_base64 = corpus::docx(&format!(
        "Please decode {}",
        corpus::b64(b"Patient SSN 078-05-1120 on file").replace(['\r', '\n'], "")
    ));
    let mut appended = zip_of(&[("readme.txt", b"nothing here")]);
    appended.extend_from_slice(b"\r\nPatient SSN 078-05-1120\r\n");
    for (what, name, data) in [
        ("embedded object", "letter.docx", docx_with_embedding),
        ("base64 in a document", "letter.docx", docx_with_base64),
        ("data after the zip", "files.zip", appended),
    ] {
        let v = inspector().inspect(&attach(name, "application/octet-stream", &data));
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Ssn),
            "{what}: {v:?}"
        );
    }
}

/// Issue 11 (first part): legacy OLE files (.doc/.xls/.msg) are read, not only tagged; an
/// encrypted OOXML package inside OLE is reported as encrypted.
#[test]
fn legacy_ole_files_are_read() {
    let ole = |streams: &[(&str, Vec<u8>)]| {
        let mut cf = cfb::CompoundFile::create(std::io::Cursor::new(Vec::new())).unwrap();
        for (name, data) in streams {
            let mut s = cf.create_stream(name).unwrap();
            s.write_all(data).unwrap();
        }
        cf.flush().unwrap();
        cf.into_inner().into_inner()
    };
    let utf16 = |t: &str| -> Vec<u8> { t.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let mut doc = vec![0xEC, 0xA5, 0xC1, 0x00, 0, 0, 0, 0];
    doc.extend_from_slice(b"Patient SSN 078-05-1120 referred\x00\x00");
    for (what, name, data) in [
        ("Word 97 text", "old.doc", ole(&[("WordDocument", doc)])),
        (
            "Outlook message body",
            "mail.msg",
            ole(&[(
                "__substg1.0_1000001F",
                utf16("Card 4111 1111 1111 1111 thanks"),
            )]),
        ),
    ] {
        let v = inspector().inspect(&attach(name, "application/octet-stream", &data));
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Ssn
                    || h.detector == postern_dlp::Detector::Card),
            "{what}: {v:?}"
        );
    }
    let encrypted = ole(&[
        ("EncryptionInfo", vec![4, 0, 4, 0]),
        ("EncryptedPackage", vec![0u8; 64]),
    ]);
    let v = inspector().inspect(&attach(
        "secret.docx",
        "application/octet-stream",
        &encrypted,
    ));
    assert!(
        v.notes.iter().any(|n| matches!(n, Note::Encrypted { .. })),
        "{v:?}"
    );
}

/// Issue 11 (first part): a PDF of images only (a scan) is reported as unreadable, so the
/// policy decides, rather than passing as clean.
#[test]
fn an_image_only_pdf_is_reported() {
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /XObject /Subtype /Image /Width 10 /Height 10 /Length 3 >>\nstream\nabc\nendstream\nendobj\ntrailer << >>\n%%EOF\n";
    let v = inspector().inspect(&attach("scan.pdf", "application/pdf", pdf));
    assert!(
        v.notes
            .iter()
            .any(|n| matches!(n, Note::Unreadable { why, .. } if why.contains("images only"))),
        "{v:?}"
    );
    assert_eq!(v.action, Action::Tag);
}

/// Issue 11 (first part): a uuencoded file inside a text body is read.
#[test]
fn uuencoded_text_is_read() {
    fn uuencode(data: &[u8]) -> String {
        let enc = |v: u8| if v == 0 { '`' } else { (v + 32) as char };
        let mut s = String::from("begin 644 notes.txt\n");
        for chunk in data.chunks(45) {
            s.push(enc(chunk.len() as u8));
            for tri in chunk.chunks(3) {
                let b = [tri[0], *tri.get(1).unwrap_or(&0), *tri.get(2).unwrap_or(&0)];
                s.push(enc(b[0] >> 2));
                s.push(enc(((b[0] & 3) << 4) | (b[1] >> 4)));
                s.push(enc(((b[1] & 15) << 2) | (b[2] >> 6)));
                s.push(enc(b[2] & 63));
            }
            s.push('\n');
        }
        s.push_str("`\nend\n");
        s
    }
    let msg = format!(
        "From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\nFile follows:\r\n{}",
        uuencode(b"Patient SSN 078-05-1120 and more text to make several lines of uuencode output here.")
    );
    let v = inspector().inspect(msg.as_bytes());
    assert!(
        v.hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Ssn),
        "{v:?}"
    );
}

/// Issue 11 (first part): a DOCX whose card number is split by `<w:tab/>` runs.
#[test]
fn a_docx_card_split_by_tabs_is_found() {
    let doc = "<?xml version=\"1.0\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body><w:p><w:r><w:t>Card</w:t></w:r><w:r><w:tab/><w:t>4111</w:t><w:tab/><w:t>1111</w:t><w:tab/><w:t>1111</w:t><w:tab/><w:t>1111</w:t></w:r></w:p></w:body></w:document>";
    let docx = corpus::zip_of(&[
        (
            "[Content_Types].xml",
            b"<?xml version=\"1.0\"?><Types/>".to_vec(),
        ),
        ("word/document.xml", doc.as_bytes().to_vec()),
    ]);
    let v = inspector().inspect(&attach(
        "letter.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &docx,
    ));
    assert!(
        v.hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Card),
        "{v:?}"
    );
}

/// Sniffing a file as text must not turn an encrypted attachment (armoured, so valid text)
/// into clean text: the encrypted note stays, and the policy decides.
#[test]
fn an_armoured_encrypted_attachment_stays_encrypted() {
    let armour = b"-----BEGIN PGP MESSAGE-----\n\nhQEMA1234567890abcdefghijklmnop\n=abcd\n-----END PGP MESSAGE-----\n";
    let v = inspector().inspect(&attach("secret.asc", "application/pgp-encrypted", armour));
    assert!(
        v.notes.iter().any(|n| matches!(n, Note::Encrypted { .. })),
        "{v:?}"
    );
    assert_eq!(v.action, Action::Quarantine);
}

/// A message whose structure makes mail-parser 0.11.9 panic (a debug assertion; found by the
/// dlp_inspect fuzz target): inspected as text a reader would see, no panic, and the card in
/// it still found.
#[test]
fn a_structure_that_panics_the_mime_parser_is_read_as_text() {
    let raw = include_bytes!("../../../tests/data/hostile-mime/mail-parser-part-id-panic.eml");
    let v = inspector().inspect(raw);
    assert!(
        v.hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Card),
        "{:?}",
        v.hits
    );
    assert_ne!(v.action, Action::Allow);
}

/// A zip whose one entry is compressed with `method`.
fn zip_with(method: zip::CompressionMethod, name: &str, data: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    z.start_file(name, opts).unwrap();
    z.write_all(data).unwrap();
    z.finish().unwrap().into_inner()
}

/// Issue 22.11: every compression in common use is opened — .bz2 and .xz files (and tar
/// inside them), zip entries compressed with bzip2, LZMA (a file CPython wrote) or xz — and a
/// compressed file or entry we cannot open (zstd, 7-Zip, RAR) is a limit, held by default,
/// never "could not inspect" and delivered.
#[test]
fn every_common_compression_is_opened_and_the_rest_is_held() {
    let csv = b"name,ssn\nJane Roe,078-05-1120\n".to_vec();
    let bz2 = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(&csv).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut w =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
        w.write_all(&csv).unwrap();
        w.finish().unwrap()
    };
    let lzma_zip = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/dlp/lzma-entry.zip"
    ))
    .unwrap();
    for (what, name, data) in [
        ("bzip2 file", "data.csv.bz2", bz2.clone()),
        ("xz file", "data.csv.xz", xz),
        ("bzip2 file, no name", "data.bin", bz2),
        (
            "zip entry, bzip2",
            "a.zip",
            zip_with(zip::CompressionMethod::Bzip2, "r.csv", &csv),
        ),
        (
            "zip entry, xz",
            "a.zip",
            zip_with(zip::CompressionMethod::Xz, "r.csv", &csv),
        ),
        ("zip entry, LZMA (CPython)", "a.zip", lzma_zip),
    ] {
        let v = inspector().inspect(&attach(name, "application/octet-stream", &data));
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Ssn),
            "{what}: {v:?}"
        );
        assert_ne!(v.action, Action::Allow, "{what}");
    }
    // Formats we do not open: held (on_limit), with a note that says which.
    let zstd = [&[0x28, 0xb5, 0x2f, 0xfd][..], b"\x00\x58\x01\x00opaque"].concat();
    let seven = [&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c][..], &[0u8; 32]].concat();
    for (what, data) in [("zstd", zstd), ("7-Zip", seven)] {
        let v = inspector().inspect(&attach("data.bin", "application/octet-stream", &data));
        assert!(
            limit_notes(&v).iter().any(|n| n.contains(what)),
            "{what}: {v:?}"
        );
        assert_eq!(v.action, Action::Quarantine, "{what}");
    }
}

/// Issue 22.11: text a person or a program recovers from HTML attributes and data URIs, and
/// digits with combining marks or written as a JSON array, is read.
#[test]
fn attributes_data_uris_combining_marks_and_digit_arrays_are_read() {
    let html = |body: &str| {
        format!(
            "From: a@clinic.example\r\nTo: b@gmail.test\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n<html><body>{body}</body></html>\r\n"
        )
        .into_bytes()
    };
    let plain = |body: &str| {
        format!("From: a@clinic.example\r\nTo: b@gmail.test\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
            .into_bytes()
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode("Patient SSN 078-05-1120");
    let accented: String = "4111 1111 1111 1111"
        .chars()
        .flat_map(|c| {
            if c.is_ascii_digit() {
                vec![c, '\u{301}']
            } else {
                vec![c]
            }
        })
        .collect();
    for (what, msg) in [
        (
            "img alt",
            html("<img alt=\"card 4111 1111 1111 1111\" src=\"x.png\">"),
        ),
        (
            "title attribute",
            html("<span title='SSN 078-05-1120'>hover here</span>"),
        ),
        (
            "hidden form input",
            html("<form><input type=hidden name=p value=\"4111111111111111\"></form>"),
        ),
        (
            "data URI",
            html(&format!(
                "<a href=\"data:text/plain;base64,{b64}\">file</a>"
            )),
        ),
        (
            "data URI in text",
            plain("see data:,SSN%20078-05-1120 here"),
        ),
        ("combining accents", plain(&format!("card {accented}"))),
        (
            "JSON array",
            plain("{\"pan\": [4,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}"),
        ),
    ] {
        let v = inspector().inspect(&msg);
        assert!(
            v.hits
                .iter()
                .any(|h| h.detector == postern_dlp::Detector::Ssn
                    || h.detector == postern_dlp::Detector::Card),
            "{what}: {v:?}"
        );
        assert_ne!(v.action, Action::Allow, "{what}");
    }
}
