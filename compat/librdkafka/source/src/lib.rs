//! Empty: this package only exists to fetch rdkafka-sys's sources.
