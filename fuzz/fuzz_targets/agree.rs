//! Shared by the open targets: opening a message handed over must agree with opening it
//! borrowed.

use postern_core::{Error, Opened};

/// The same message and report, or the same error; a panic (a fuzz finding) otherwise.
pub fn agree(borrowed: Result<Opened, Error>, owned: Result<Opened, Error>) {
    match (borrowed, owned) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.message, b.message);
            assert_eq!(format!("{:?}", a.report), format!("{:?}", b.report));
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("borrowed {:?}, owned {:?}", a.is_ok(), b.is_ok()),
    }
}
