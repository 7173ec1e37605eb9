//! Clients for each supported system. Each speaks the operation vocabulary of its workload (see
//! `docs/history.md`) and maps the system's answers onto ok / fail / info by one rule: `fail`
//! only when the operation definitely had no effect, `info` when it may have.

pub mod etcd;
pub mod external;
pub mod memory;
pub mod nats;
pub mod postgres;
pub mod rabbitmq;
pub mod redis;
pub mod redis_stream;
pub mod testbed;
pub mod zookeeper;
