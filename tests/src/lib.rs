//! Harness for wormgate's black-box tests.
