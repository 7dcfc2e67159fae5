//! Content inspection on arbitrary input: as a whole message, and as a zip, PDF and DOCX
//! attachment. Must never panic; limits keep every input bounded in time and memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static INSPECTOR: OnceLock<postern_dlp::Inspector> = OnceLock::new();

fn attach(name: &str, data: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "Subject: f\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream; name={name}\r\nContent-Disposition: attachment; filename={name}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(data);
    m.extend_from_slice(b"\r\n--b--\r\n");
    m
}

fuzz_target!(|data: &[u8]| {
    let i = INSPECTOR.get_or_init(|| {
        postern_dlp::Inspector::new(postern_dlp::DlpPolicy::default()).expect("default policy")
    });
    let _ = i.inspect(data);
    for name in ["f.zip", "f.pdf", "f.docx"] {
        let _ = i.inspect(&attach(name, data));
    }
});
