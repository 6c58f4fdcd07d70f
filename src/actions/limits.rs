//! Per-target limits from the agent config, as the guard applies them.
use std::time::Duration;

/// circuit_break: share of a target's instances that may be open at once.
pub const DEFAULT_MAX_OPEN_SHARE: f64 = 0.5;

/// Per-target limits from the agent config (the config module maps to this).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLimits {
    pub min: u32,
    pub max: u32,
    /// After a scale-up, no further scale-up for this long.
    pub cooldown_up: Duration,
    /// After any replica-count change (up or down), no scale-down for this long:
    /// never shrink right after growing.
    pub cooldown_down: Duration,
    /// Rule actions started per target in any hour; 0 disables the limit.
    pub max_actions_per_hour: u32,
    /// Largest share of instances with an open circuit (a rule's
    /// `max_open_share` overrides it).
    pub max_open_share: f64,
}

impl Default for TargetLimits {
    fn default() -> Self {
        Self {
            min: 1,
            max: u32::MAX,
            cooldown_up: Duration::ZERO,
            cooldown_down: Duration::ZERO,
            max_actions_per_hour: 30,
            max_open_share: DEFAULT_MAX_OPEN_SHARE,
        }
    }
}
