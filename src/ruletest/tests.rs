//! Unit tests of the ruletest module.
