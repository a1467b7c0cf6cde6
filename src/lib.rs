//! kvs-viewer
