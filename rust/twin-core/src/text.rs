//! [`Text`]: the text of a STRING value, inline when short.
//!
//! Device strings are mostly short (a status word, a serial number, a few registers of text).
//! Up to [`Text::INLINE`] bytes live inside the value itself, so a STRING twin and its sample
//! cost no allocation and compare without following a pointer; longer text lives on the heap.
//! A [`Value`](crate::Value) holding a `Text` stays 16 bytes.

use std::fmt;
use std::ops::Deref;

/// UTF-8 text, inline up to [`Text::INLINE`] bytes.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    /// `len` bytes of `bytes` (valid UTF-8, as they came from a `&str`).
    Inline { len: u8, bytes: [u8; Text::INLINE] },
    /// Longer text (boxed twice: one thin pointer keeps the value small).
    #[allow(clippy::box_collection)]
    Heap(Box<String>),
}

impl Text {
    /// The most bytes held inline.
    pub const INLINE: usize = 14;

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Inline bytes are always a whole `&str`'s bytes, so this never falls back.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        if text.len() <= Self::INLINE {
            let mut bytes = [0; Self::INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Self(Repr::Inline {
                len: text.len() as u8,
                bytes,
            })
        } else {
            Self(Repr::Heap(Box::new(text.to_owned())))
        }
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        if text.len() <= Self::INLINE {
            Self::from(text.as_str())
        } else {
            Self(Repr::Heap(Box::new(text)))
        }
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_inline_and_a_value_stays_small() {
        assert!(matches!(
            Text::from("s123456").0,
            Repr::Inline { len: 7, .. }
        ));
        assert!(matches!(Text::from("x".repeat(14)).0, Repr::Inline { .. }));
        assert!(matches!(Text::from("x".repeat(15)).0, Repr::Heap(_)));
        assert_eq!(std::mem::size_of::<crate::Value>(), 16);
    }

    proptest! {
        #[test]
        fn holds_any_text(text in "\\PC{0,20}") {
            let t = Text::from(text.as_str());
            prop_assert_eq!(t.as_str(), text.as_str());
            prop_assert_eq!(&t, &Text::from(text.clone()));
            prop_assert_eq!(format!("{t:?}"), format!("{text:?}"));
        }
    }
}
