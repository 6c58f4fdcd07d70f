//! Unit tests of the haproxy adapter's pieces (parsing, error mapping, the
//! view); the behaviour against a real HAProxy is in `tests/haproxy_provider.rs`.
