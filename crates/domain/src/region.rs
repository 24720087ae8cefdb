//! Regions: the cells a workspace is pinned to. Data, keys and logs of one region never mix
//! with another's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A hosting region. Every workspace lives in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
    Eu,
    Au,
}

impl Region {
    pub const ALL: [Region; 3] = [Region::Us, Region::Eu, Region::Au];

    pub const fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
            Region::Au => "au",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Region {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "us" => Ok(Region::Us),
            "eu" => Ok(Region::Eu),
            "au" => Ok(Region::Au),
            _ => Err(DomainError::new(
                "region",
                "invalid_region",
                "region must be one of us, eu, au",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown() {
        for r in Region::ALL {
            assert_eq!(r.as_str().parse::<Region>(), Ok(r));
        }
        assert!("US".parse::<Region>().is_err());
        assert!("ap".parse::<Region>().is_err());
    }
}
