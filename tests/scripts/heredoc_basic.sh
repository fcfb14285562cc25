# covers: here-docs <<EOF (expanding), <<'EOF' (literal), <<"EOF", here-strings
name=world
cat <<EOF
hello $name
sum $((1 + 2)) and $(echo subst)
  indented \$literal
EOF
cat <<'EOF'
no $expansion here $(echo nope)
EOF
cat <<"END"
also literal $name
END
tr a-z A-Z <<< "here string $name"
wc -l <<EOF
1
2
3
EOF
