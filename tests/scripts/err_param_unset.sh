# covers: ${x:?message} and ${x?} on unset variables: bash's message and exit status 1
y=set
echo "${y:?not printed}"
echo before
echo "${x:?x is required}"
echo never
