#!/bin/bash
# Suite 40-p2p again with the kernel-patches/ series loaded (issue 12 with
# issue 7): a lease released while the importer still holds it is revoked
# alone, for good; the other lease's importer keeps working. No benchmark.
# Build the module first: make kernel-patches (make check-vm does).
# vm-options: --edu 1 --vfio-pci-core build/kernel-patches/vfio-pci-core.ko
P2P_EXPECT_REVOKE=1 exec "$(dirname "${BASH_SOURCE[0]}")/40-p2p.sh"
