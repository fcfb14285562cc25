# covers: syntax error near unexpected token ')' inside a function body and `done` without loop
f() {
    echo ok
}
f
echo x )
done
