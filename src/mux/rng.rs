//! The Engine's random numbers: ChaCha20 seeded once, so a fixed seed replays a run exactly.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// A cryptographically strong generator for salts, nonces and cancel keys.
#[derive(Debug)]
pub(crate) struct Rng(ChaCha20Rng);

impl Rng {
    /// Seeds from `seed`, or from the operating system when `None`; `None` back when the
    /// operating system has no randomness to give (no safe way to mint secrets then).
    pub(crate) fn new(seed: Option<[u8; 32]>) -> Option<Self> {
        let seed = match seed {
            Some(s) => s,
            None => {
                let mut s = [0u8; 32];
                getrandom::getrandom(&mut s).ok()?;
                s
            }
        };
        Some(Rng(ChaCha20Rng::from_seed(seed)))
    }

    /// Fills `dst` with random bytes.
    pub(crate) fn fill(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst);
    }

    /// A random array.
    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        self.fill(&mut a);
        a
    }

    /// A random u32.
    pub(crate) fn u32(&mut self) -> u32 {
        self.0.next_u32()
    }
}
