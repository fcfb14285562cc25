# covers: exported variables seen by child processes, VAR=x cmd prefix, export -n, unset, harness env
export FOO=bar
bash -c 'echo "child sees FOO=$FOO"'
BAZ=temp bash -c 'echo "prefix BAZ=$BAZ"'
echo "parent BAZ=${BAZ-unset}"
NOTEXP=1
bash -c 'echo "NOTEXP=${NOTEXP-unset}"'
export NOTEXP
env | grep -E '^(FOO|NOTEXP|HS_TEST_MARKER)=' | sort
export -n FOO
bash -c 'echo "after -n FOO=${FOO-unset}"'
unset NOTEXP
printenv NOTEXP || echo "printenv status $?"
f() { echo "fn FOO=$FOO"; }
FOO=scoped f
