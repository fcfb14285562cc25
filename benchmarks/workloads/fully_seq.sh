#!/bin/bash
# 40 CPU-bound commands (checksums of an ~8.5 MB file, ~20-50 ms each) that all overwrite
# the same file `out`, then print it. Every command truncates `out` and reads only `data`:
# write-after-write, which the overlays isolate (DESIGN §3), so the DAG has no edge between
# them and all 40 may run at once; only the final `cat` depends on the last one. A runner
# that orders commands by the files they touch would see a fully sequential script.
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
sha256sum data > out
sha1sum data > out
md5sum data > out
cksum data > out
cat out
