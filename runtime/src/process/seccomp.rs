//! The spec's seccomp section compiled by libseccomp, as runc does it: syscall
//! names unknown to this libseccomp are skipped, conditions on the same argument
//! become separate rules (libseccomp ANDs conditions within a rule), and
//! libseccomp's own no_new_privs is off so that only the spec decides it.

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which berth-runtime does not support"
                    .into(),
            ));
        }
    })
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

fn seccomp_err(what: String) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    move |e| Error::Seccomp(format!("{what}: {e}"))
}

pub fn build(spec: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(seccomp_err("creating filter".into()))?;
    ctx.set_ctl_nnp(false)
        .map_err(seccomp_err("turning off libseccomp's no_new_privs".into()))?;
    for arch in spec.architectures().iter().flatten() {
        let name = arch.to_string();
        let a = ScmpArch::from_str(&name).map_err(seccomp_err(format!("architecture {name}")))?;
        if !ctx.is_arch_present(a).unwrap_or(false) {
            ctx.add_arch(a)
                .map_err(seccomp_err(format!("adding architecture {name}")))?;
        }
    }
    for flag in spec.flags().iter().flatten() {
        let r = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                ctx.set_ctl_waitkill(true).map(|_| ())
            }
        };
        if let Err(e) = r {
            tracing::warn!("seccomp flag {flag} not supported here: {e}");
        }
    }
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let args = rule.args().clone().unwrap_or_default();
        let conds: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        let mut per_index = [0usize; 6];
        for a in &args {
            if let Some(c) = per_index.get_mut(a.index()) {
                *c += 1;
            }
        }
        let split = per_index.iter().any(|c| *c > 1);
        for name in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: skipping syscall {name} unknown to libseccomp");
                continue;
            };
            let res = if conds.is_empty() {
                ctx.add_rule(act, sys)
            } else if split {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sys, &[*c]).map(|_| ()))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sys, &conds)
            };
            res.map_err(seccomp_err(format!("adding rule for {name}")))?;
        }
    }
    Ok(ctx)
}

pub fn load(ctx: &ScmpFilterContext) -> Result<()> {
    ctx.load().map_err(seccomp_err("loading filter".into()))
}
