# covers: IFS changes and word splitting of variables and external command output, read with IFS
data="a:b::c"
IFS=: read -r -a parts <<< "$data"; echo "${#parts[@]} [${parts[2]}]"
old=$IFS; IFS=:
for p in $data; do printf '<%s>' "$p"; done; echo
IFS=$old
for w in $(printf 'x y\tz\nw'); do printf '<%s>' "$w"; done; echo
IFS=
for w in $(printf 'x y z'); do printf '<%s>' "$w"; done; echo
unset IFS
v="  lead  trail  "; echo "[$v]" [$v]
set -- $(echo "1 2 3"); echo "$#"
