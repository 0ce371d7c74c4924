import CShims

/// How the wledger process allocates memory.
public enum ProcessMemory {
    /// Keeps freed memory inside the process for the next allocation instead of returning it to
    /// the kernel. A commit of a 7B-sized tensor allocates and frees several buffers of ~90 MB
    /// (the parent rebuilt from the ledger, the prediction, the residual, the verification copy);
    /// glibc maps each one afresh and unmaps it when freed, so every one of their pages was
    /// faulted in and cleared by the kernel again, and in a virtual machine the first touch of a
    /// page can cost the hypervisor a fault as well. Measured on a 7B-shaped commit (2 runs each,
    /// the same settings given through GLIBC_TUNABLES):
    /// 292–304 k minor faults and 0.86–1.5 s system time before, 163–171 k and 0.46–0.49 s after.
    /// The cost: the process keeps its peak heap until it exits. Call at start-up, before any
    /// other thread exists (the CLI does for its tensor commands; the inference commands were
    /// not measured with it).
    @discardableResult
    public static func keepFreedMemory() -> Bool { wl_keep_freed_memory() == 1 }
}
