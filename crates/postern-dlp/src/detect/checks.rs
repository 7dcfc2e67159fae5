//! The validators: a pattern only nominates a candidate; these decide.

/// Luhn (mod 10) over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Card brands by issuer prefix (IIN) and length.
pub fn card_brand(digits: &[u8]) -> Option<&'static str> {
    let n = digits.len();
    let prefix = |k: usize| -> u32 {
        digits
            .iter()
            .take(k)
            .fold(0, |a, d| a * 10 + u32::from(d - b'0'))
    };
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    let brand = if p1 == 4 && matches!(n, 13 | 16 | 19) {
        "visa"
    } else if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && n == 16 {
        "mastercard"
    } else if matches!(p2, 34 | 37) && n == 15 {
        "amex"
    } else if (p4 == 6011
        || p2 == 65
        || (644..=649).contains(&p3)
        || (622_126..=622_925).contains(&p6))
        && (16..=19).contains(&n)
    {
        "discover"
    } else if (3528..=3589).contains(&p4) && (16..=19).contains(&n) {
        "jcb"
    } else if ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 || p3 == 309)
        && (14..=19).contains(&n)
    {
        "diners"
    } else if p2 == 62 && (16..=19).contains(&n) {
        "unionpay"
    } else {
        return None;
    };
    Some(brand)
}

/// A payment card number: a known brand and length, and the Luhn check (UnionPay cards need
/// not pass Luhn, but we only report those that do: unchecked 16-digit numbers are too common).
pub fn is_card(digits: &[u8]) -> Option<&'static str> {
    let b = card_brand(digits)?;
    luhn(digits).then_some(b)
}

/// A US SSN by the SSA's rules: area not 000, 666 or 900–999; group not 00; serial not 0000;
/// and not one of the numbers known from advertising (078-05-1120 is *valid* here on purpose:
/// it was really issued, and a message carrying it is a message carrying an SSN).
pub fn is_ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = (d[0] - b'0') as u32 * 100 + (d[1] - b'0') as u32 * 10 + (d[2] - b'0') as u32;
    let group = &d[3..5];
    let serial = &d[5..9];
    area != 0
        && area != 666
        && area < 900
        && group != b"00"
        && serial != b"0000"
        // All one digit is a placeholder, not an SSN.
        && !d.iter().all(|c| *c == d[0])
        && d != b"123456789"
}

/// An NPI: 10 digits starting with 1 or 2, Luhn over "80840" + the number.
pub fn is_npi(d: &[u8]) -> bool {
    if d.len() != 10 || !matches!(d[0], b'1' | b'2') {
        return false;
    }
    let mut full = b"80840".to_vec();
    full.extend_from_slice(d);
    luhn(&full)
}

/// A DEA registration number: registrant type letter, a letter (or 9), seven digits with the
/// DEA checksum.
pub fn is_dea(s: &[u8]) -> bool {
    if s.len() != 9 {
        return false;
    }
    let first = s[0].to_ascii_uppercase();
    if !b"ABCDEFGHJKLMPRSTUX".contains(&first) {
        return false;
    }
    if !(s[1].is_ascii_alphabetic() || s[1] == b'9') || !s[2..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = s[2..].iter().map(|c| u32::from(c - b'0')).collect();
    let sum = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5]);
    sum % 10 == d[6]
}

/// A Medicare Beneficiary Identifier (CMS format): 11 characters, dashes optional.
pub fn is_mbi(s: &[u8]) -> bool {
    let c: Vec<u8> = s
        .iter()
        .filter(|b| **b != b'-')
        .map(u8::to_ascii_uppercase)
        .collect();
    if c.len() != 11 {
        return false;
    }
    // Letters exclude S, L, O, I, B and Z.
    let alpha = |b: u8| b.is_ascii_uppercase() && !b"SLOIBZ".contains(&b);
    let num = |b: u8| b.is_ascii_digit();
    let an = |b: u8| alpha(b) || num(b);
    matches!(c[0], b'1'..=b'9')
        && alpha(c[1])
        && an(c[2])
        && num(c[3])
        && alpha(c[4])
        && an(c[5])
        && num(c[6])
        && alpha(c[7])
        && alpha(c[8])
        && num(c[9])
        && num(c[10])
}

/// Mod-11 check digit (weights 2..) as used by many record-number schemes; `X` is 10.
pub fn mod11(s: &[u8]) -> bool {
    let Some((&check, body)) = s.split_last() else {
        return false;
    };
    if body.is_empty() || !body.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * (i as u32 + 2))
        .sum();
    let want = (11 - sum % 11) % 11;
    match check {
        b'X' | b'x' => want == 10,
        d if d.is_ascii_digit() => want == u32::from(d - b'0'),
        _ => false,
    }
}

/// Masks all but the last four characters that are digits or letters, keeping separators.
pub fn mask(s: &str) -> String {
    let total = s.chars().filter(|c| c.is_ascii_alphanumeric()).count();
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                seen += 1;
                if seen + 4 > total {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        for (n, b) in [
            ("4111111111111111", "visa"),
            ("4012888888881881", "visa"),
            ("4222222222222", "visa"),
            ("5555555555554444", "mastercard"),
            ("2223003122003222", "mastercard"),
            ("378282246310005", "amex"),
            ("6011111111111117", "discover"),
            ("3530111333300000", "jcb"),
            ("30569309025904", "diners"),
            ("6200000000000005", "unionpay"),
            ("6221260000000000", "discover"),
        ] {
            assert_eq!(is_card(n.as_bytes()), Some(b), "{n}");
        }
        assert_eq!(is_card(b"4111111111111112"), None, "Luhn");
        assert_eq!(is_card(b"9111111111111111"), None, "no issuer");
        assert_eq!(
            is_card(b"41111111111111"),
            None,
            "Visa has no 14-digit cards"
        );
    }

    #[test]
    fn ssns() {
        assert!(is_ssn(b"078051120"));
        assert!(is_ssn(b"219099999"));
        for bad in [
            "000123456",
            "666123456",
            "900123456",
            "123004567",
            "123450000",
            "111111111",
            "123456789",
        ] {
            assert!(!is_ssn(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn health_identifiers() {
        assert!(is_npi(b"1234567893"));
        assert!(!is_npi(b"1234567890"));
        assert!(!is_npi(b"3234567893"));
        assert!(is_dea(b"AB1234563"));
        assert!(is_dea(b"F91234563"));
        assert!(!is_dea(b"AB1234564"));
        assert!(!is_dea(b"QB1234563"));
        assert!(is_mbi(b"1EG4-TE5-MK73"));
        assert!(is_mbi(b"1EG4TE5MK73"));
        assert!(!is_mbi(b"1EG4-TE5-MK7"));
        assert!(!is_mbi(b"0EG4TE5MK73"));
        assert!(!is_mbi(b"1SG4TE5MK73"), "S is excluded");
        assert!(mod11(b"0306406152"));
        assert!(mod11(b"080442957X"));
        assert!(!mod11(b"0306406153"));
    }

    #[test]
    fn masking() {
        assert_eq!(mask("4111 1111 1111 1111"), "**** **** **** 1111");
        assert_eq!(mask("078-05-1120"), "***-**-1120");
        assert_eq!(mask("12"), "12");
    }
}
