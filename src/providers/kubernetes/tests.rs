//! Unit tests of the kubernetes provider pieces that need no API server.
