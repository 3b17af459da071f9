-- danxia differential corpus for PostgreSQL 15.
--
-- Run by tests/clients/differential.py once straight against PostgreSQL and
-- once through danxia, on one autocommit connection each, with search_path set
-- to a fresh schema danxia_diff. Every entry's result (status, columns, rows,
-- error fields, notices) must be identical on both sides.
--
-- Format: entries are separated by lines containing only `-- next`. An entry
-- may span lines and contain semicolons (dollar-quoted bodies, or several
-- statements sent as one simple Query, of which the client sees the last
-- result). Text before the first separator (this header) is ignored.
--
-- Rules for new entries: the output must not legitimately differ between two
-- runs: no now()/random()/clock functions, OIDs, pids, client ports, timings,
-- xmin/ctid; every multi-row SELECT has an ORDER BY that fixes the order;
-- EXPLAIN only with (costs off) on tables that were ANALYZEd; objects are
-- created unqualified (they land in danxia_diff) or in schemas named
-- danxia_diff_* (dropped by the script).
-- next
-- ===== session settings =====
set timezone = 'UTC'
-- next
set datestyle = 'ISO, YMD'
-- next
show timezone
-- next
set extra_float_digits = 1
-- next
SHOW search_path
-- next
set work_mem = '8MB'
-- next
show work_mem
-- next
reset work_mem
-- next
set intervalstyle = 'postgres'
-- next
select current_setting('standard_conforming_strings')
-- next
-- ===== DDL: tables, constraints, indexes =====
create table dept (
    id int primary key,
    name text not null unique,
    budget numeric(12, 2) check (budget >= 0)
) with (autovacuum_enabled = false)
-- next
create table emp (
    id serial primary key,
    name text not null,
    dept_id int references dept (id) on delete set null,
    salary numeric(10, 2),
    manager_id int references emp (id),
    hired date,
    tags text[],
    info jsonb
) with (autovacuum_enabled = false)
-- next
create index emp_dept_idx on emp (dept_id)
-- next
create unique index emp_name_lower_idx on emp (lower(name))
-- next
create index emp_info_gin on emp using gin (info)
-- next
comment on table emp is 'employees; used by the differential corpus'
-- next
comment on column emp.salary is 'monthly, EUR'
-- next
select obj_description('emp'::regclass, 'pg_class'), col_description('emp'::regclass, 4)
-- next
alter table emp add column email text
-- next
alter table emp alter column email set default 'nobody@example.invalid'
-- next
alter table emp rename column email to mail
-- next
alter table emp add constraint emp_salary_positive check (salary > 0)
-- next
select column_name, data_type, is_nullable, column_default
from information_schema.columns
where table_schema = 'danxia_diff' and table_name = 'emp'
order by ordinal_position
-- next
select conname, contype, pg_get_constraintdef(oid)
from pg_constraint
where conrelid = 'danxia_diff.emp'::regclass
order by conname
-- next
select indexname, indexdef from pg_indexes where schemaname = 'danxia_diff' order by indexname
-- next
-- ===== DML =====
insert into dept values (1, 'Engineering', 100000), (2, 'Sales', 50000.5), (3, 'Empty', 0), (4, '研发部', 12345.67)
-- next
insert into emp (name, dept_id, salary, manager_id, hired, tags, info) values
    ('Alice', 1, 9000, null, '2015-03-01', '{lead,rust}', '{"level": 5, "langs": ["rust", "sql"]}'),
    ('Bob', 1, 7000, 1, '2017-07-15', '{rust}', '{"level": 3, "langs": ["go"]}'),
    ('Carol', 2, 6500, null, '2016-01-10', '{sales}', '{"level": 4, "remote": true}'),
    ('Dan', 2, null, 3, '2020-11-30', null, null),
    ('Eve', null, 5000, 1, '2021-05-05', '{}', '{"level": 1}'),
    ('张伟', 4, 8000, null, '2019-09-09', '{"中文",emoji😀}', '{"名字": "张伟"}')
returning id, name, salary
-- next
insert into emp (name, dept_id, salary, hired) values ('Frank', 1, 4000, '2022-02-02') returning *
-- next
select id, name, dept_id, salary, manager_id, hired, tags, info, mail from emp order by id
-- next
update emp set salary = salary * 1.1 where dept_id = 1 returning id, salary
-- next
update emp e set salary = e.salary + d.budget / 100000
from dept d
where e.dept_id = d.id and d.name = 'Sales'
returning e.name, e.salary
-- next
delete from emp e using dept d where e.dept_id = d.id and d.name = 'Nonexistent'
-- next
insert into dept values (2, 'Sales', 1) on conflict (id) do update set budget = dept.budget + excluded.budget returning *
-- next
insert into dept values (3, 'Ignored', 1) on conflict do nothing
-- next
insert into dept values (5, 'Marketing', 2000) on conflict (id) do update set budget = excluded.budget where dept.budget < 0
-- next
select * from dept order by id
-- next
create table dept_changes (id int, name text, budget numeric(12, 2))
-- next
insert into dept_changes values (1, 'Engineering', 110000), (5, 'Marketing', 0), (6, 'Legal', 3000)
-- next
merge into dept d
using dept_changes c on d.id = c.id
when matched and c.budget = 0 then delete
when matched then update set budget = c.budget
when not matched then insert (id, name, budget) values (c.id, c.name, c.budget)
-- next
select * from dept order by id
-- next
table dept_changes
-- next
values (1, 'one'), (2, 'two'), (3, null) order by 1 desc
-- next
select * into emp_copy from emp where salary is not null
-- next
create table emp_summary as select dept_id, count(*) as n, sum(salary) as total from emp group by dept_id
-- next
select * from emp_summary order by dept_id nulls first
-- next
truncate emp_copy
-- next
select count(*) from emp_copy
-- next
-- ===== joins =====
select e.name, d.name from emp e join dept d on d.id = e.dept_id order by e.id
-- next
select e.name, d.name from emp e left join dept d on d.id = e.dept_id order by e.id
-- next
select e.name, d.name from emp e right join dept d on d.id = e.dept_id order by d.id, e.id
-- next
select e.name, d.name from emp e full outer join dept d on d.id = e.dept_id order by d.id nulls first, e.id nulls first
-- next
select e.name, d.name from emp e cross join dept d where e.id <= 2 order by e.id, d.id
-- next
select * from (select 1 as k, 'a' as v) x natural join (select 1 as k, 'b' as w) y
-- next
select k, x.v, y.w from (values (1, 'a'), (2, 'b')) x(k, v) join (values (2, 'c'), (3, 'd')) y(k, w) using (k)
-- next
select e.name, m.name as manager from emp e left join emp m on m.id = e.manager_id order by e.id
-- next
select d.name from dept d where exists (select 1 from emp e where e.dept_id = d.id) order by d.id
-- next
select d.name from dept d where not exists (select 1 from emp e where e.dept_id = d.id) order by d.id
-- next
select d.name, top.name, top.salary
from dept d
cross join lateral (select name, salary from emp e where e.dept_id = d.id order by salary desc nulls last limit 1) top
order by d.id
-- next
select d.name, x.n from dept d left join lateral (select count(*) as n from emp e where e.dept_id = d.id) x on true order by d.id
-- next
select e.name from emp e join dept d on false order by 1
-- next
-- ===== CTEs =====
with big as (select * from emp where salary > 6000) select name from big order by name
-- next
with recursive fib(n, a, b) as (
    select 1, 0::numeric, 1::numeric
    union all
    select n + 1, b, a + b from fib where n < 90
)
select n, a from fib order by n desc limit 3
-- next
with recursive chain as (
    select id, name, manager_id, 1 as depth, name::text as path from emp where manager_id is null
    union all
    select e.id, e.name, e.manager_id, c.depth + 1, c.path || ' > ' || e.name
    from emp e join chain c on e.manager_id = c.id
)
select * from chain order by path
-- next
with recursive t(n) as (values (1) union all select n + 1 from t where n < 5)
search depth first by n set ord
select n, ord from t order by ord
-- next
with recursive g(a, b) as (values (1, 2), (2, 3), (3, 1))
, walk(node, steps) as (
    select 1, 0
    union all
    select g.b, w.steps + 1 from walk w join g on g.a = w.node
)
cycle node set is_cycle using route
select node, steps, is_cycle from walk order by steps
-- next
with moved as (
    delete from dept_changes where budget > 1000 returning *
)
insert into dept_changes (id, name, budget) select id + 100, name || ' (moved)', budget from moved returning *
-- next
with upd as (update dept set budget = budget + 1 where id = 3 returning id, budget)
select * from upd
-- next
select * from dept_changes order by id
-- next
with x as materialized (select 1 as a), y as not materialized (select 2 as b) select * from x, y
-- next
-- ===== window functions =====
select name, dept_id, salary,
       row_number() over w, rank() over w, dense_rank() over w,
       percent_rank() over w, cume_dist() over w
from emp
window w as (partition by dept_id order by salary desc nulls last)
order by dept_id nulls first, salary desc nulls last, name
-- next
select name, salary,
       lag(salary) over (order by id), lead(salary, 2, 0) over (order by id),
       first_value(name) over (order by id), last_value(name) over (order by id rows between unbounded preceding and unbounded following),
       nth_value(name, 2) over (order by id)
from emp order by id
-- next
select g, sum(g) over (order by g rows between 2 preceding and current row),
       avg(g) over (order by g range between 1 preceding and 1 following),
       ntile(3) over (order by g),
       count(*) filter (where g % 2 = 0) over ()
from generate_series(1, 10) g order by g
-- next
select g, sum(g) over (order by g groups between 1 preceding and 1 following exclude current row) from generate_series(1, 6) g order by g
-- next
-- ===== grouping =====
select dept_id, count(*), sum(salary), avg(salary)::numeric(10, 2), max(hired), min(name)
from emp group by dept_id having count(*) >= 1 order by dept_id nulls first
-- next
select dept_id, extract(year from hired) as y, count(*)
from emp group by grouping sets ((dept_id), (extract(year from hired)), ())
order by dept_id nulls last, y nulls last
-- next
select dept_id, manager_id, count(*), grouping(dept_id, manager_id)
from emp group by rollup (dept_id, manager_id)
order by dept_id nulls last, manager_id nulls last
-- next
select dept_id, manager_id, count(*) from emp group by cube (dept_id, manager_id)
order by dept_id nulls last, manager_id nulls last, 3
-- next
select string_agg(name, ', ' order by name), array_agg(id order by id desc), json_agg(name order by id), bool_and(salary > 0), bool_or(salary > 8000)
from emp
-- next
select percentile_cont(0.5) within group (order by salary), percentile_disc(0.5) within group (order by salary), mode() within group (order by dept_id)
from emp
-- next
select count(distinct dept_id), count(*) filter (where salary is null) from emp
-- next
-- ===== set operations, subqueries, DISTINCT ON, ordering =====
select dept_id from emp union select id from dept order by 1 nulls first
-- next
select dept_id from emp union all select id from dept order by 1 nulls first
-- next
select dept_id from emp intersect select id from dept order by 1
-- next
select id from dept except select dept_id from emp order by 1
-- next
select x from (values (1), (1), (2)) v(x) intersect all select x from (values (1), (1), (1)) w(x) order by 1
-- next
select x from (values (1), (1), (2)) v(x) except all select x from (values (1)) w(x) order by 1
-- next
select name, (select name from dept d where d.id = e.dept_id) as dept from emp e order by id
-- next
select name from emp where dept_id in (select id from dept where budget > 10000) order by name
-- next
select name from emp where salary > all (select salary from emp where dept_id = 2 and salary is not null) order by name
-- next
select name from emp where salary < any (array[5500, 7000]) order by name
-- next
select distinct on (dept_id) dept_id, name, salary from emp order by dept_id nulls first, salary desc nulls last, name
-- next
select name, salary from emp order by salary nulls first, name
-- next
select name, salary from emp order by salary desc nulls last, name limit 3 offset 1
-- next
select dept_id, name from emp order by dept_id nulls last fetch first 3 rows with ties
-- next
select distinct dept_id from emp order by 1 nulls first
-- next
-- ===== partitioning and table variants =====
create table measurements (city text, day date, temp numeric) partition by range (day)
-- next
create table measurements_2023 partition of measurements for values from ('2023-01-01') to ('2024-01-01')
-- next
create table measurements_2024 partition of measurements for values from ('2024-01-01') to ('2025-01-01')
-- next
insert into measurements values ('Beijing', '2023-07-01', 35.5), ('Oslo', '2024-01-15', -12.25), ('Lima', '2024-06-30', 18)
-- next
select tableoid::regclass, * from measurements order by day
-- next
insert into measurements values ('Nowhere', '1999-01-01', 0)
-- next
create table measurements_like (like measurements including all)
-- next
alter table measurements_like set (fillfactor = 70)
-- next
select relname, reloptions from pg_class where relname like 'measurements%' and relnamespace = 'danxia_diff'::regnamespace order by relname
-- next
-- ===== views, materialized views, sequences =====
create view emp_public as select id, name, dept_id from emp where dept_id is not null
-- next
select * from emp_public order by id
-- next
create or replace view emp_public as select id, name, dept_id, hired from emp where dept_id is not null
-- next
select pg_get_viewdef('emp_public'::regclass, true)
-- next
create materialized view dept_stats as
select d.id, d.name, count(e.id) as n from dept d left join emp e on e.dept_id = d.id group by d.id, d.name
-- next
create unique index dept_stats_id on dept_stats (id)
-- next
select * from dept_stats order by id
-- next
insert into emp (name, dept_id, salary, hired) values ('Grace', 6, 3000, '2023-03-03')
-- next
refresh materialized view concurrently dept_stats
-- next
select * from dept_stats order by id
-- next
create sequence seq_a start 10 increment 5
-- next
select nextval('seq_a'), nextval('seq_a'), currval('seq_a')
-- next
select setval('seq_a', 100), nextval('seq_a')
-- next
alter sequence seq_a restart with 1 increment 1
-- next
select nextval('seq_a')
-- next
select last_value, is_called from seq_a
-- next
-- ===== functions, procedures, triggers, types, domains, schemas =====
create function add_tax(amount numeric, rate numeric default 0.2) returns numeric
language sql immutable as $$ select round(amount * (1 + rate), 2) $$
-- next
select add_tax(100), add_tax(100, 0.07), add_tax(rate => 0.5, amount => 10)
-- next
create function dept_total(p_dept int) returns numeric
language plpgsql stable as $body$
declare
    total numeric := 0;
    r record;
begin
    for r in select salary from emp where dept_id = p_dept loop
        total := total + coalesce(r.salary, 0);
    end loop;
    if total = 0 then
        raise notice 'department % has no salaries; returning 0', p_dept;
    end if;
    return total; -- semicolons inside the body must not split the entry
end;
$body$
-- next
select dept_total(1), dept_total(2)
-- next
select dept_total(3)
-- next
create function emp_in(p_dept int) returns table (emp_name text, emp_salary numeric)
language plpgsql as $$
begin
    return query select name, salary from emp where dept_id = p_dept order by name;
end $$
-- next
select * from emp_in(1)
-- next
create function fails_with_detail(x int) returns int language plpgsql as $$
begin
    if x < 0 then
        raise exception 'negative input: %', x
            using detail = 'x must be >= 0', hint = 'pass a positive number', errcode = '22023';
    end if;
    return x;
end $$
-- next
select fails_with_detail(-5)
-- next
create procedure bump_budget(p_id int, p_by numeric) language plpgsql as $$
begin
    update dept set budget = budget + p_by where id = p_id;
end $$
-- next
call bump_budget(4, 0.33)
-- next
select budget from dept where id = 4
-- next
create table audit_trail (op text, emp_name text)
-- next
create function log_emp() returns trigger language plpgsql as $$
begin
    insert into audit_trail values (tg_op, coalesce(new.name, old.name));
    return coalesce(new, old);
end $$
-- next
create trigger emp_log after insert or update or delete on emp for each row execute function log_emp()
-- next
update emp set salary = 3100 where name = 'Grace'
-- next
delete from emp where name = 'Grace'
-- next
select * from audit_trail order by op, emp_name
-- next
drop trigger emp_log on emp
-- next
do $$
declare
    n int;
begin
    select count(*) into n from emp;
    raise notice 'emp has % rows', n;
    raise info 'info level message';
end
$$
-- next
create type mood as enum ('sad', 'ok', 'happy')
-- next
alter type mood add value 'ecstatic' after 'happy'
-- next
select enum_range(null::mood), 'ok'::mood < 'happy'::mood
-- next
create table moods (who text, m mood)
-- next
insert into moods values ('a', 'happy'), ('b', 'sad'), ('c', 'ecstatic'), ('d', null)
-- next
select who, m from moods order by m nulls first, who
-- next
select 'furious'::mood
-- next
create type pair as (a int, b text)
-- next
select (1, 'x')::pair, ((2, 'y')::pair).b, row(3, 'z')::pair = row(3, 'z')::pair
-- next
create domain positive_int as int check (value > 0) not null
-- next
select 5::positive_int
-- next
select (-1)::positive_int
-- next
create domain us_zip as text check (value ~ '^\d{5}$')
-- next
select '12345'::us_zip, '1234x'::us_zip
-- next
create schema danxia_diff_extra
-- next
create table danxia_diff_extra.t (x int)
-- next
insert into danxia_diff_extra.t values (1), (2)
-- next
select * from danxia_diff_extra.t order by x
-- next
alter schema danxia_diff_extra rename to danxia_diff_extra2
-- next
select count(*) from danxia_diff_extra2.t
-- next
drop schema danxia_diff_extra2
-- next
drop schema danxia_diff_extra2 cascade
-- next
grant select on emp to public
-- next
revoke select on emp from public
-- next
select grantee, privilege_type from information_schema.role_table_grants
where table_schema = 'danxia_diff' and table_name = 'emp' and grantee = 'PUBLIC' order by 2
-- next
-- ===== errors: each must match direct (SQLSTATE, message, detail, hint, position) =====
select 1/0
-- next
select * from no_such_table
-- next
selec 1
-- next
select no_such_column from emp
-- next
insert into dept values (1, 'Duplicate', 1)
-- next
insert into emp (name, dept_id) values ('Ghost', 999)
-- next
insert into dept (id, name) values (10, null)
-- next
insert into dept values (11, 'Negative', -5)
-- next
select 'abc'::int
-- next
select 2147483647::int + 1
-- next
create table short_text (s varchar(3))
-- next
insert into short_text values ('toolong')
-- next
select no_such_function(1)
-- next
select 1 + 'a'::text
-- next
create table dept (id int)
-- next
create type mood as enum ('x')
-- next
drop table dept
-- next
select '2024-02-30'::date
-- next
select 'not a date'::timestamp
-- next
select (select id from emp)
-- next
select ln(0)
-- next
select convert_from('\xff'::bytea, 'UTF8')
-- next
select name, count(*) from emp
-- next
select id from emp e join emp m on m.id = e.manager_id
-- next
select row_number() over (order by id) from emp where row_number() over (order by id) > 1
-- next
select $1
-- next
execute no_such_prepared
-- next
fetch 1 from no_such_cursor
-- next
drop type no_such_type
-- next
create table no_such_schema.t (x int)
-- next
alter sequence emp restart
-- next
select substring('abc' from 1 for -1)
-- next
select 'a' like 'a' escape 'xy'
-- next
select 'a' ~ '('
-- next
select currval('seq_never_used')
-- next
create sequence seq_never_used
-- next
select currval('seq_never_used')
-- next
create function no_return() returns int language plpgsql as $$ begin end $$
-- next
select no_return()
-- next
create table ranges_ex (r int4range, exclude using gist (r with &&))
-- next
insert into ranges_ex values ('[1,10)'), ('[5,15)')
-- next
select array[1, 2]::int[] || array['a']
-- next
select 10000000000000000000000000000::numeric(5, 2)
-- next
select 1e308::float8 * 10
-- next
select '{1,2'::int[]
-- next
select '{"a": }'::jsonb
-- next
select repeat('x', -1) || 1/0
-- next
select * from generate_series(1, 3) g where g = 'x'
-- next
-- ===== transactions =====
begin
-- next
insert into dept values (20, 'Tx dept', 1)
-- next
savepoint s1
-- next
insert into dept values (21, 'Tx dept 2', 1)
-- next
rollback to savepoint s1
-- next
release savepoint s1
-- next
commit
-- next
select id, name from dept where id >= 20 order by id
-- next
begin isolation level repeatable read
-- next
show transaction_isolation
-- next
set local work_mem = '16MB'
-- next
show work_mem
-- next
select 1/0
-- next
select 1
-- next
rollback
-- next
show work_mem
-- next
start transaction read only
-- next
insert into dept values (30, 'read only', 1)
-- next
rollback
-- next
begin; insert into dept values (40, 'multi', 1); commit
-- next
select name from dept where id = 40
-- next
begin; select 1; select 2
-- next
commit
-- next
rollback
-- next
commit
-- next
begin
-- next
lock table dept in share mode
-- next
commit
-- next
-- ===== prepared statements and cursors =====
prepare p_dept(int) as select id, name, budget from dept where id = $1
-- next
execute p_dept(1)
-- next
execute p_dept(999)
-- next
prepare p_ins(int, text) as insert into dept values ($1, $2, 0)
-- next
execute p_ins(50, 'Prepared')
-- next
select name, statement, parameter_types::text, from_sql from pg_prepared_statements order by name
-- next
deallocate p_ins
-- next
deallocate all
-- next
execute p_dept(1)
-- next
begin
-- next
declare c_emp cursor for select id, name from emp order by id
-- next
fetch 2 from c_emp
-- next
fetch next from c_emp
-- next
move forward 1 in c_emp
-- next
fetch all from c_emp
-- next
fetch backward 1 from c_emp
-- next
close c_emp
-- next
declare c_scroll scroll cursor for select g from generate_series(1, 100) g
-- next
fetch absolute 50 from c_scroll
-- next
fetch relative -10 from c_scroll
-- next
fetch last from c_scroll
-- next
commit
-- next
declare c_outside cursor for select 1
-- next
-- ===== EXPLAIN =====
analyze dept
-- next
analyze emp
-- next
explain (costs off) select * from dept where id = 1
-- next
explain (costs off) select e.name, d.name from emp e join dept d on d.id = e.dept_id where d.budget > 10
-- next
explain (costs off, verbose) select count(*) from emp group by dept_id
-- next
explain (costs off) select * from emp where info @> '{"level": 5}'
-- next
-- ===== NULL handling =====
select null = null, null is null, null is distinct from null, 1 is distinct from null, null::int is not distinct from null
-- next
select coalesce(null, null, 'third'), nullif(1, 1), nullif(1, 2), greatest(1, null, 3), least(null, 2)
-- next
select count(*), count(salary), sum(salary), avg(salary) filter (where salary is null) from emp
-- next
select null::text || 'x', concat(null, 'x', null), concat_ws(',', 'a', null, 'b'), array_to_string(array['a', null, 'c'], '-', '*')
-- next
select 3 in (1, null), 3 not in (1, null), null::bool and false, null::bool or true
-- next
-- ===== unicode =====
select '中文字符测试', length('中文字符测试'), octet_length('中文字符测试'), upper('straße'), lower('ÀÉÎÕÜ')
-- next
select '😀🎉👍🏽', length('😀🎉👍🏽'), octet_length('👍🏽'), reverse('abc😀')
-- next
select 'e' || U&'\0301', length('e' || U&'\0301'), normalize('e' || U&'\0301', nfc), length(normalize('e' || U&'\0301', nfc))
-- next
select U&'\4E2D\6587', E'\u00e9\t\u263A', 'tab	inside'
-- next
create table unicode_t (id int, t text)
-- next
insert into unicode_t values (1, 'Ελληνικά'), (2, 'العربية'), (3, 'עברית'), (4, '日本語テキスト'), (5, '한국어'), (6, 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗̻̊')
-- next
select id, t, length(t), md5(t) from unicode_t order by id
-- next
select * from unicode_t where t like '%語%'
-- next
select "列名" from (select 1 as "列名") x
-- next
-- ===== bytea =====
set bytea_output = 'hex'
-- next
select '\xdeadbeef'::bytea, decode('00ff10', 'hex'), 'abc'::bytea, '\000\001\377'::bytea
-- next
select sha256('hello'::bytea), md5('hello'::bytea), length('\x0001'::bytea), encode('\x00ff'::bytea, 'base64')
-- next
set bytea_output = 'escape'
-- next
select '\xdeadbeef'::bytea, 'a\\b'::bytea, decode('00ff10', 'hex')
-- next
reset bytea_output
-- next
select E'\\x41'::bytea, get_byte('\x0102'::bytea, 1), set_byte('\x0102'::bytea, 0, 255), substring('\x010203'::bytea from 2 for 1)
-- next
select string_agg(set_byte('\x00'::bytea, 0, g), ''::bytea order by g) from generate_series(0, 255) g
-- next
-- ===== arrays =====
select '{{1,2,3},{4,5,6}}'::int[], ('{{1,2,3},{4,5,6}}'::int[])[2][3], array_dims('{{1,2,3},{4,5,6}}'::int[])
-- next
select array[1, null, 3], array_length(array[1, null, 3], 1), cardinality('{{1,2},{3,4}}'::int[]), array_position(array['a', 'b'], 'b')
-- next
select array['with "quotes"', 'with,comma', 'with\backslash', null, '', 'NULL']
-- next
select (array[1, 2, 3, 4, 5])[2:4], (array[1, 2, 3])[5], array_remove(array[1, 2, 1], 1), array_replace(array[1, null], null, 0)
-- next
select u, o from unnest(array['x', 'y', 'z']) with ordinality as t(u, o) order by o
-- next
select '[0:2]={7,8,9}'::int[], array_lower('[0:2]={7,8,9}'::int[], 1), '{}'::text[], array[]::int[] = '{}'
-- next
select array_agg(g order by g) filter (where g % 3 = 0) from generate_series(1, 20) g
-- next
select tags, tags @> '{rust}', 'rust' = any (tags) from emp order by id
-- next
select array[[1.5, null], [2.5, 3.5]]::float8[], array['2024-01-01'::date, null]
-- next
-- ===== json / jsonb =====
select info -> 'langs', info ->> 'level', info #> '{langs,0}', info #>> '{langs,1}' from emp order by id
-- next
select name from emp where info @> '{"level": 3}' or info ? 'remote' order by name
-- next
select '{"a": {"b": [1, 2, {"c": "d"}]}}'::jsonb #> '{a,b,2}', jsonb_typeof('[1]'), jsonb_array_length('[1, 2, 3]')
-- next
select jsonb_set('{"a": 1, "b": [1, 2]}', '{b,1}', '"two"'), '{"a": 1}'::jsonb || '{"b": 2}', '{"a": 1, "b": 2}'::jsonb - 'a'
-- next
select jsonb_pretty('{"z": [1, {"y": null}], "a": "中文"}')
-- next
select key, value from jsonb_each('{"b": 2, "a": [1], "c": {"d": null}}') order by key
-- next
select jsonb_path_query_array('{"items": [{"p": 5}, {"p": 15}, {"p": 25}]}', '$.items[*] ? (@.p > 10).p')
-- next
select json_build_object('k', 1, 'arr', json_build_array(1, 'two', null)), row_to_json(row(1, 'a')), to_jsonb(array[1, 2])
-- next
select '{"b": 1, "a": 2, "a": 3}'::json, '{"b": 1, "a": 2, "a": 3}'::jsonb, '[1.000, 1e3, -0]'::jsonb
-- next
select jsonb_agg(d order by d.id) from dept d where id < 3
-- next
select x.* from jsonb_to_recordset('[{"a": 1, "b": "x"}, {"a": 2, "b": null}]') as x(a int, b text) order by a
-- next
select '"\u00e9\ud83d\ude00"'::jsonb, '{"emoji": "😀"}'::json ->> 'emoji'
-- next
-- ===== ranges and multiranges =====
select int4range(1, 10) @> 5, int4range(1, 10) && int4range(10, 20), int4range(1, 10, '[]'), upper(int4range(1, 10))
-- next
select daterange('2024-01-01', '2024-02-01') * daterange('2024-01-15', '2024-03-01'), isempty(numrange(1, 1))
-- next
select tstzrange('2024-01-01 00:00+00', '2024-01-02 00:00+00'), '[2024-01-01,)'::daterange, 'empty'::int4range
-- next
select int4multirange(int4range(1, 3), int4range(5, 8)) + int4multirange(int4range(2, 6)), range_merge('{[1,2), [5,6)}'::int4multirange)
-- next
insert into ranges_ex values ('[20,30)'), ('(40,50]')
-- next
select r, lower(r), upper_inc(r) from ranges_ex order by r
-- next
-- ===== numeric precision, dates, misc scalars =====
select 1::numeric / 3, 2::numeric ^ 100, 0.1::float8 + 0.2::float8, 1e308::float8 / 10
-- next
select 123456789012345678901234567890.123456789::numeric * 987654321, round(2.5), round(-2.5), round(2.5::float8), trunc(-7.9)
-- next
select 'NaN'::numeric, 'Infinity'::float8, '-Infinity'::numeric, 1::float4 / 3, 17 % 5, -17 / 5, 2 ^ 0.5
-- next
select factorial(25), gcd(1071, 462), lcm(4, 6), sqrt(2::numeric), exp(1::numeric), ln(10::numeric)
-- next
select 12345.678::numeric(8, 2), 0.000001234::numeric, 1.0e-20::numeric, scale(1.2300), trim_scale(1.2300)
-- next
select to_char(1234567.891, '9G999G999D99'), to_char(-0.5, 'FM9990.00'), to_number('1,234.5', '9G999D9')
-- next
select '2024-02-29'::date + 1, '2024-03-31'::date - interval '1 month', date_trunc('month', '2024-05-17 13:14:15'::timestamp)
-- next
select '2024-06-01 12:00:00+08'::timestamptz, '2024-06-01 12:00:00+08'::timestamptz at time zone 'America/New_York', extract(epoch from '2024-01-01 00:00:00+00'::timestamptz)
-- next
select interval '1 year 2 months 3 days 04:05:06.789', justify_hours(interval '50 hours'), age('2024-01-01'::timestamp, '2000-02-29'::timestamp)
-- next
select to_char('2024-12-31 23:59:59'::timestamp, 'YYYY-MM-DD HH24:MI:SS Day Month IW'), make_date(2020, 2, 29), make_interval(days => 10)
-- next
select 'infinity'::timestamp, '-infinity'::date, 'epoch'::timestamptz, '4713-01-01 BC'::date
-- next
select '12:34:56.789'::time, '12:34:56+05:30'::timetz, '1999-12-31 23:59:59.999999'::timestamp(3)
-- next
select 'a'::char(5) || '|', length('a  '::char(5)), 'abc'::varchar(2), 'x'::"char", true::int, 't'::bool, 'off'::bool
-- next
select '192.168.1.0/24'::cidr, '10.1.2.3/8'::inet, host('10.1.2.3/8'::inet), '::1'::inet << '::/0'::cidr, '08:00:2b:01:02:03'::macaddr
-- next
select '00000000-0000-0000-0000-000000000000'::uuid, md5('abc')::uuid, '(1,2)'::point, '<(0,0),1>'::circle, '[(0,0),(1,1)]'::lseg
-- next
select 'fat & rat'::tsquery, to_tsvector('english', 'The quick brown foxes jumped'), to_tsvector('simple', 'a b') @@ 'a'::tsquery
-- next
select B'1010' | B'0101', x'ff'::bit(8), 42::bit(8), ~B'1100', '1010'::varbit
-- next
select 'p@ss'::text, quote_ident('Mixed Case'), quote_literal('it''s'), quote_nullable(null), format('%s|%I|%L|%5s|%-5s|', 'a', 'b c', 'd''e', 'r', 'l')
-- next
select E'line1\nline2', E'back\\slash', 'single''quote', $$dollar 'quoted' ; text$$, $tag$nested $$ inside$tag$
-- next
select /* block /* nested */ comment */ 1 as one -- trailing comment
-- next
select regexp_replace('Hello World', '(\w+) (\w+)', '\2 \1'), regexp_matches('a1b22c333', '\d+', 'g'), split_part('a,b,c', ',', 2)
-- next
select * from regexp_split_to_table('one two  three', '\s+') with ordinality as t(w, n) order by n
-- next
select lpad('7', 3, '0'), rpad('ab', 5, '.'), initcap('hello wORLD'), translate('12345', '143', 'ax'), left('abcdef', -2), right('abcdef', 2)
-- next
select position('lo' in 'hello'), strpos('hello', 'l'), overlay('Txxxxas' placing 'hom' from 2 for 4), starts_with('alphabet', 'alph'), ascii('A'), chr(20013)
-- next
select case when 1 > 2 then 'no' when 2 > 1 then 'yes' else 'never' end, case 3 when 1 then 'a' else 'other' end
-- next
select pg_typeof(1), pg_typeof(1.0), pg_typeof('a'::text), pg_typeof(array[1]), pg_typeof(null), pg_typeof(now() - now())
-- next
select cast('42' as bigint), '3.5'::real::int, 7::numeric::text, '1e3'::float8::bigint
-- next
select jsonb_path_exists('{"a": [1, 2]}', '$.a[*] ? (@ > 1)'), jsonb_strip_nulls('{"a": null, "b": 1}'), json_typeof('"s"')
-- next
-- ===== large values and many rows =====
select length(repeat('x', 5000000)), md5(repeat('x', 5000000))
-- next
select repeat('x', 5000000) as five_megabytes
-- next
select repeat('中', 1000000) as three_megabytes_of_chinese
-- next
select count(*), sum(g), md5(string_agg(g::text, ',' order by g)) from generate_series(1, 100000) g
-- next
select g, md5(g::text), g % 7 = 0 as seventh from generate_series(1, 100000) g
-- next
select g, repeat(chr(65 + g % 26), g % 100) from generate_series(1, 20000) g
-- next
create table wide (id int primary key, a text, b text, c text, d bytea)
-- next
insert into wide select g, repeat('a', 1000), md5(g::text), null, decode(md5(g::text), 'hex') from generate_series(1, 2000) g
-- next
select * from wide order by id
-- next
update wide set c = repeat('c', 100) where id % 2 = 0
-- next
delete from wide where id > 1500
-- next
select count(*), count(c), sum(length(a)) from wide
-- next
-- ===== LISTEN / NOTIFY on the same session =====
listen danxia_diff_channel
-- next
notify danxia_diff_channel, 'hello from the corpus'
-- next
select pg_notify('danxia_diff_channel', '中文 payload')
-- next
unlisten *
-- next
notify danxia_diff_channel, 'nobody listens'
-- next
-- ===== maintenance, utility =====
vacuum dept
-- next
vacuum (analyze) emp
-- next
reindex table dept
-- next
cluster emp using emp_pkey
-- next
create index concurrently emp_hired_idx on emp (hired)
-- next
drop index concurrently emp_hired_idx
-- next
vacuum dept_changes; analyze dept_changes
-- next
checkpoint
-- next
discard temp
-- next
create temporary table tmp_t (x int) on commit preserve rows
-- next
insert into tmp_t select generate_series(1, 5)
-- next
select sum(x) from tmp_t
-- next
drop table tmp_t
-- next
-- ===== multi-statement simple queries =====
select 1; select 2 as second
-- next
create table multi_t (x int); insert into multi_t values (1), (2); update multi_t set x = x * 10; select * from multi_t order by x
-- next
select 'a;b' as semicolon_in_literal; select $$c;d$$ as in_dollar
-- next
insert into multi_t values (3); select 1/0; insert into multi_t values (4)
-- next
select x from multi_t order by x
-- next
;
-- next
-- ===== DDL teardown =====
alter table emp drop constraint emp_salary_positive
-- next
alter table emp drop column mail
-- next
drop view emp_public
-- next
drop materialized view dept_stats
-- next
drop function add_tax(numeric, numeric)
-- next
drop function dept_total
-- next
drop procedure bump_budget
-- next
drop table emp
-- next
drop table emp cascade
-- next
drop table if exists emp
-- next
drop type if exists mood, pair cascade
-- next
drop domain positive_int
-- next
drop sequence seq_a, seq_never_used
-- next
select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'danxia_diff' order by c.relname
