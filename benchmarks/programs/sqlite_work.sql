-- The shootout's SQLite workload, recorded with the trace recorder (sqlite3 :memory: < this).
-- An orders database: bulk insert, an index, joins, grouping, sorting and an update.
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, city TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, amount REAL, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
  INSERT INTO customers SELECT i, 'customer ' || i, 'city ' || (i % 97) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
  INSERT INTO orders
    SELECT i, (i * 7919) % 20000 + 1, (i % 1000) / 7.0, hex(i * 2654435761 % 4294967296) FROM n;
CREATE INDEX orders_by_customer ON orders(customer);
SELECT city, count(*), sum(amount) FROM orders JOIN customers ON customers.id = orders.customer
  GROUP BY city ORDER BY sum(amount) DESC LIMIT 3;
SELECT note FROM orders ORDER BY note LIMIT 1;
UPDATE orders SET note = upper(note) WHERE amount > 100;
SELECT count(DISTINCT note) FROM orders;
