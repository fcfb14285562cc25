# covers: -e -u -o pipefail together as flags; $- reflects them
# flags: -e -u -o pipefail
# args: a b
echo "flags: $-"
shopt -qo pipefail && echo pipefail-on
echo "$1$2"
cat missing 2>/dev/null | sort
echo not reached
