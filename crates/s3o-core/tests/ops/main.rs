//! Orchestration-order tests of s3o-core's operations against a hand-written recording
//! `TxAdapter` ([`fake`]). No database: these pin which primitives each operation calls, in
//! which order, and what it does with their answers. Storage behaviour is tested on real
//! engines by the conformance suite.

mod admin;
mod buckets;
mod cleanup;
mod fake;
mod objects;
mod pending;
mod tx;
