# covers: here-docs inside case arms and nested loops, here-doc with command substitution in a pipeline
for mode in a b; do
    case $mode in
        a) cat <<EOF
mode a: $(echo computed)
EOF
        ;;
        b) cat <<'EOF' | sed 's/^/> /'
mode b: $(not computed)
EOF
        ;;
    esac
done
while read -r x; do
    cat <<EOF >> collected.txt
got $x
EOF
done <<EOF
1
2
EOF
cat collected.txt
