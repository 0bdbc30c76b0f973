//! RFC 8628 user codes: 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L, 2/Z,
//! 5/S, 8/B, U/V), shown as `XXXX-XXXX`. Input is forgiving about case, spaces and dashes.

use rand::Rng;

/// 20 consonants and digits that cannot be mistaken for one another; 20^8 ≈ 2.6 × 10^10 codes.
pub const ALPHABET: &[u8; 20] = b"CDFGHJKMNPQRTWXY3467";

pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> String {
    let mut s = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            s.push('-');
        }
        let idx = rng.gen_range(0..ALPHABET.len());
        s.push(char::from(ALPHABET[idx]));
    }
    s
}

/// Normalizes typed input to `XXXX-XXXX`, or `None` when it cannot be a user code.
pub fn normalize(input: &str) -> Option<String> {
    let chars: Vec<char> = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if chars.len() != 8
        || !chars
            .iter()
            .all(|c| c.is_ascii() && ALPHABET.contains(&(*c as u8)))
    {
        return None;
    }
    let mut s: String = chars[..4].iter().collect();
    s.push('-');
    s.extend(&chars[4..]);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_normalize_to_themselves() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let code = generate(&mut rng);
            assert_eq!(code.len(), 9);
            assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
            assert_eq!(
                normalize(&code.to_lowercase().replace('-', " ")).as_deref(),
                Some(code.as_str())
            );
        }
        assert_eq!(normalize("OOOO-0000"), None);
        assert_eq!(normalize("CDFG-HJK"), None);
    }
}
