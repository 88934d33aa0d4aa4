//! How the authentication targets damage one message of an exchange: not at all, a flipped
//! byte, a cut, or bytes of the fuzzer's choosing.

use arbitrary::Arbitrary;

/// What happens to one message on its way.
#[derive(Arbitrary, Debug, Clone)]
pub enum Mutation {
    /// Delivered as sent.
    Intact,
    /// One byte XORed with a non-zero mask.
    Flip {
        /// Where (modulo the length).
        at: u16,
        /// The mask (0 becomes 1).
        mask: u8,
    },
    /// Cut to a prefix.
    Truncate {
        /// The length kept (modulo the length).
        at: u16,
    },
    /// Replaced by these bytes.
    Replace(Vec<u8>),
}

impl Mutation {
    /// `message` after the mutation.
    pub fn apply(&self, message: &[u8]) -> Vec<u8> {
        let mut m = message.to_vec();
        match self {
            Mutation::Intact => {}
            Mutation::Flip { at, mask } => {
                if !m.is_empty() {
                    let i = usize::from(*at) % m.len();
                    m[i] ^= (*mask).max(1);
                }
            }
            Mutation::Truncate { at } => {
                if !m.is_empty() {
                    m.truncate(usize::from(*at) % m.len());
                }
            }
            Mutation::Replace(bytes) => m = bytes.clone(),
        }
        m
    }
}
