# covers: local, declare inside functions, dynamic scoping, local -r, global assignment from functions
x=global
a() { local x=in-a; b; echo "a after b: $x"; }
b() { echo "b sees: $x"; x=changed-by-b; }
a
echo "top: $x"
c() { declare y=local-y; z=global-z; local -r r=ro; r=2 2>/dev/null; echo "r=$r"; }
c
echo "y=${y-unset} z=$z"
d() { local -a arr=(1 2 3); local -A m=([k]=v); echo "${#arr[@]} ${m[k]}"; }
d
echo "arr=${arr-unset}"
