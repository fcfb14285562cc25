# covers: here-docs inside functions, loops and command substitution; here-doc written to files
emit() {
    local n=$1
    cat <<EOF
item $n
EOF
}
for i in 1 2 3; do emit $i; done > items.txt
cat items.txt
v=$(cat <<'EOF'
captured $not
EOF
)
echo "v=$v"
function mk {
    cat > "$1" <<-EOF
	generated for $1
	EOF
}
mk a.conf; mk b.conf
cat a.conf b.conf
