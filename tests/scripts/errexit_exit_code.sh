# covers: set -e exit status is that of the failing command (not 1), trap EXIT sees it
set -e
trap 'echo "trap sees $?"' EXIT
echo start
bash -c 'exit 42'
echo never
