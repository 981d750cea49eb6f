"""Integrity (完整性): hash chain, Merkle checkpoints, proofs and verification."""
