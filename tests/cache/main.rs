//! The cache: the in-process tier end to end, the Redis tier (on its own and shared by
//! replicas), the lookup alongside core's call, the fault matrix and the memory bound.

mod alongside_core;
mod end_to_end;
mod fault_matrix;
mod memory_bound;
mod redis;
mod redis_tier;
