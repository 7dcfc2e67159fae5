//! Encryption at rest: every portal message has a fresh AES-256-GCM key; that key is stored
//! only wrapped (AES-256-GCM) under the master key from the configuration. Destroying the
//! wrapped key (revocation, expiry) makes the ciphertext unreadable even in old backups of
//! the database taken without the master key. Each ciphertext is bound to its row and field by
//! the associated data, so one cannot be moved into another message.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

/// Encryption or decryption failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No randomness, or a key that is not a key.
    #[error("encryption failed")]
    Seal,
    /// Wrong key, or the stored bytes were changed.
    #[error("stored data cannot be decrypted (wrong master key, or tampered)")]
    Open,
}

/// The master key (32 bytes).
pub struct MasterKey(LessSafeKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// A message key, unwrapped (zeroised when dropped).
pub struct MessageKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// The key from its 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> Result<MasterKey, SealError> {
        Ok(MasterKey(aead(bytes)?))
    }

    /// A fresh message key and its wrapped form (bound to `id`).
    pub fn new_message_key(&self, id: &str) -> Result<(MessageKey, Vec<u8>), SealError> {
        let mut k = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut k[..]).map_err(|_| SealError::Seal)?;
        let wrapped = seal(&self.0, &format!("key:{id}"), &k[..])?;
        Ok((MessageKey(k), wrapped))
    }

    /// The message key of `id` from its wrapped form.
    pub fn unwrap_key(&self, id: &str, wrapped: &[u8]) -> Result<MessageKey, SealError> {
        let plain = Zeroizing::new(open(&self.0, &format!("key:{id}"), wrapped)?);
        let k: [u8; 32] = plain.as_slice().try_into().map_err(|_| SealError::Open)?;
        Ok(MessageKey(Zeroizing::new(k)))
    }
}

impl MessageKey {
    /// Encrypts `field` of message `id`.
    pub fn seal(&self, id: &str, field: &str, data: &[u8]) -> Result<Vec<u8>, SealError> {
        seal(&aead(&self.0)?, &format!("{field}:{id}"), data)
    }

    /// Decrypts `field` of message `id`.
    pub fn open(&self, id: &str, field: &str, data: &[u8]) -> Result<Vec<u8>, SealError> {
        open(&aead(&self.0)?, &format!("{field}:{id}"), data)
    }
}

fn aead(k: &[u8; 32]) -> Result<LessSafeKey, SealError> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, k).map_err(|_| SealError::Seal)?,
    ))
}

/// nonce ‖ ciphertext ‖ tag.
fn seal(key: &LessSafeKey, aad: &str, data: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Seal)?;
    let mut out = Vec::with_capacity(NONCE_LEN + data.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(data);
    let mut body = out.split_off(NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad.as_bytes()),
        &mut body,
    )
    .map_err(|_| SealError::Seal)?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn open(key: &LessSafeKey, aad: &str, data: &[u8]) -> Result<Vec<u8>, SealError> {
    let (nonce, body) = data.split_at_checked(NONCE_LEN).ok_or(SealError::Open)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Open)?;
    let mut body = body.to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_bytes()),
            &mut body,
        )
        .map_err(|_| SealError::Open)?;
    let n = plain.len();
    body.truncate(n);
    Ok(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure report
mod tests {
    use super::*;

    #[test]
    fn ciphertexts_are_bound_to_their_message_and_field() {
        let master = MasterKey::new(&[1u8; 32]).unwrap();
        let (k, wrapped) = master.new_message_key("m1").unwrap();
        let c = k.seal("m1", "body", b"secret").unwrap();
        let k2 = master.unwrap_key("m1", &wrapped).unwrap();
        assert_eq!(k2.open("m1", "body", &c).unwrap(), b"secret");
        assert!(k2.open("m2", "body", &c).is_err());
        assert!(k2.open("m1", "subject", &c).is_err());
        assert!(master.unwrap_key("m2", &wrapped).is_err());
        assert!(MasterKey::new(&[2u8; 32])
            .unwrap()
            .unwrap_key("m1", &wrapped)
            .is_err());
        let mut bad = c.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(k2.open("m1", "body", &bad).is_err());
        assert!(k2.open("m1", "body", &c[..5]).is_err());
    }
}
