# covers: `function f` syntax, recursion, local/dynamic scoping, redefinition, unset -f
function fact {
    local n=$1
    if (( n <= 1 )); then echo 1; return; fi
    echo $(( n * $(fact $((n - 1))) ))
}
fact 6
function outer { local v=outer; inner; }
function inner { echo "inner sees $v"; }
v=global
outer
inner
function redef { echo first; }
redef
function redef() { echo second; }
redef
unset -f redef
redef 2>/dev/null || echo "gone: $?"
function pipeline_fn { tr a-z A-Z; }
echo shout | pipeline_fn
