//! berth-pause: the process that holds a pod's namespaces. It sleeps until
//! told to stop (SIGINT or SIGTERM end it with status 0) and, as the pod's
//! init when the pod shares one PID namespace, reaps the children
//! re-parented to it.
//!
//! Built by lifecycled's build script without std or libc (raw system
//! calls, its own entry point) as a static binary of a few KiB: it runs in
//! an empty root filesystem and costs a pod a few pages of memory. The
//! signals it answers are blocked and taken with sigtimedwait(2) rather
//! than caught, so no handler (and no signal trampoline) is needed; blocked
//! signals reach a namespace's init, which ignores unhandled ones.

#![no_std]
#![no_main]

const SIGINT: usize = 2;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;
const SIG_BLOCK: usize = 0;
const WNOHANG: usize = 1;

#[cfg(target_arch = "x86_64")]
mod sys {
    pub const WRITE: usize = 1;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const GETPID: usize = 39;
    pub const EXIT_GROUP: usize = 231;
    pub const WAIT4: usize = 61;
    pub const RT_SIGTIMEDWAIT: usize = 128;

    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as isize => ret,
                in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    #[unsafe(naked)]
    #[unsafe(no_mangle)]
    pub extern "C" fn _start() -> ! {
        // The ABI wants the stack 16-byte aligned at a call.
        core::arch::naked_asm!("xor rbp, rbp", "and rsp, -16", "call {}", sym super::run)
    }
}

#[cfg(target_arch = "aarch64")]
mod sys {
    pub const WRITE: usize = 64;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const GETPID: usize = 172;
    pub const EXIT_GROUP: usize = 94;
    pub const WAIT4: usize = 260;
    pub const RT_SIGTIMEDWAIT: usize = 137;

    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        unsafe {
            core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret,
                in("x1") b, in("x2") c, in("x3") d, options(nostack));
        }
        ret
    }

    #[unsafe(naked)]
    #[unsafe(no_mangle)]
    pub extern "C" fn _start() -> ! {
        core::arch::naked_asm!("mov x29, xzr", "mov x30, xzr", "bl {}", sym super::run)
    }
}

fn say(msg: &[u8]) {
    unsafe { sys::call(sys::WRITE, 2, msg.as_ptr() as usize, msg.len(), 0) };
}

fn exit(code: usize) -> ! {
    loop {
        unsafe { sys::call(sys::EXIT_GROUP, code, 0, 0, 0) };
    }
}

extern "C" fn run() -> ! {
    if unsafe { sys::call(sys::GETPID, 0, 0, 0, 0) } != 1 {
        say(b"berth-pause: warning: not the first process of its PID namespace\n");
    }
    let set: u64 = (1 << (SIGINT - 1)) | (1 << (SIGTERM - 1)) | (1 << (SIGCHLD - 1));
    let set_ptr = &set as *const u64 as usize;
    unsafe { sys::call(sys::RT_SIGPROCMASK, SIG_BLOCK, set_ptr, 0, 8) };
    loop {
        let sig = unsafe { sys::call(sys::RT_SIGTIMEDWAIT, set_ptr, 0, 0, 8) };
        match sig {
            s if s == SIGINT as isize || s == SIGTERM as isize => {
                say(b"berth-pause: shutting down\n");
                exit(0);
            }
            // Children re-parented to us (a shared PID namespace): reaped.
            s if s == SIGCHLD as isize => while unsafe {
                sys::call(sys::WAIT4, usize::MAX, 0, WNOHANG, 0)
            } > 0 {},
            _ => {}
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(2)
}
