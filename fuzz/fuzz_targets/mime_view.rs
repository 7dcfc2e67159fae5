//! The zero-copy message view on arbitrary bytes: every accessor, every part.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_core::MessageView;

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = MessageView::parse(data) {
        let _ = (view.headers(), view.header_section(), view.body(), view.line_ending());
        let mut stack = vec![view.root()];
        let mut seen = 0;
        while let Some(p) = stack.pop() {
            seen += 1;
            if seen > 10_000 {
                break;
            }
            let _ = (p.raw(), p.raw_body(), p.decoded_body(), p.mime_type(), p.headers());
            let _ = p.content_type_param("boundary");
            for h in p.headers() {
                let _ = h.value();
            }
            stack.extend(p.children());
        }
    }
});
