//! A condition of an object's status (Kubernetes' `metav1.Condition`), as the
//! translation finds it, before the status writer gives it its times.

/// A condition of a status, before the writer gives it its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub kind: &'static str,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub(crate) fn yes(kind: &'static str, reason: &'static str) -> Cond {
        Cond {
            kind,
            ok: true,
            reason,
            message: String::new(),
        }
    }

    pub(crate) fn no(kind: &'static str, reason: &'static str, message: String) -> Cond {
        Cond {
            kind,
            ok: false,
            reason,
            message,
        }
    }
}
